"""fp32 vs bf16 vs int8 (dynamic, Linear layers) per engine, and the accuracy check.

    python -m scripts.bench_precision [--size base] [--batch 2] [--clips 8] [--repeats 3]

Speed: median ms per batch of ``--batch`` 20 s clips, eager and TorchScript. Accuracy: each
lower precision's scores on ``--clips`` decoded benchmark clips against fp32 eager; it may
replace fp32 only if no score moves more than 0.01 and labels agree on 99% of clips.
"""

from __future__ import annotations

import argparse

import torch
from tqdm import tqdm

from handlers.audio_io import ClipDecoder
from modelzoo import audio_classifier, engines
from scripts import clips, harness
from scripts.bench_batch import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base", choices=sorted(audio_classifier.SIZES))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--out", default="results/bench_precision.json")
    args = parser.parse_args()
    model = audio_classifier.from_size(args.size, seed=0).eval()
    decoder = ClipDecoder(sample_rate=audio_classifier.SAMPLE_RATE_HZ,
                          clip_samples=audio_classifier.CLIP_SAMPLES)
    benchmark = torch.stack([decoder.decode(clips.clip("flac", seconds=20, seed=i))
                             for i in range(args.clips)])
    batch = benchmark[: args.batch]
    with torch.inference_mode():
        reference = model(benchmark)
    results = {"size": args.size, "batch": args.batch, "threads": torch.get_num_threads(),
               "ms_per_batch": {}, "accuracy": {}}
    for precision in tqdm(engines.PRECISIONS, desc="precisions"):
        lowered = engines.with_precision(model, precision)
        traced = engines.trace(lowered, batch)
        for engine, module in (("eager", lowered), ("torchscript", traced)):
            results["ms_per_batch"][f"{precision}/{engine}"] = 1000 * median_seconds(
                module, batch, args.repeats)
        with torch.inference_mode():
            scores = traced(benchmark)
        results["accuracy"][precision] = engines.accuracy_check(reference, scores,
                                                                args.threshold)
    fp32 = results["ms_per_batch"]["fp32/eager"]
    print(f"\nwav2vec2-{args.size} (random weights), batch {args.batch} x 20 s, "
          f"{results['threads']} threads, median of {args.repeats}")
    print("| precision / engine | ms per batch | vs fp32 eager |\n|---|---|---|")
    for name, ms in results["ms_per_batch"].items():
        print(f"| {name} | {ms:,.0f} | {fp32 / ms:.2f}x |")
    print(f"\naccuracy vs fp32 on {args.clips} clips (max |score diff| <= "
          f"{engines.MAX_SCORE_DIFFERENCE}, labels agree >= {engines.MIN_LABEL_AGREEMENT:.0%}):")
    for precision, check in results["accuracy"].items():
        print(f"  {precision}: max diff {check['max_difference']:.4f}, labels agree "
              f"{check['label_agreement']:.0%}: {'PASS' if check['passed'] else 'FAIL'}")
    harness.write_results(results, args.out)


if __name__ == "__main__":
    main()
