"""Time one batch of 8 clips: eager vs traced in-process, and traced through TorchServe.

    python -m scripts.bench_batch [--size base] [--repeats 5] [--out results/bench_batch.json]

Serves the traced random-weight model with one worker, sends 8 concurrent 20 s clips per
round and reports the median round time (decode and HTTP included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import torch
from tqdm import tqdm

from modelzoo import audio_classifier, engines
from modelzoo.build import BuildOptions, build_one
from modelzoo.manifest import ArchiveSpec
from scripts import clips
from scripts.services import TorchServe, free_port, read_keys

BATCH = 8


def median_seconds(model: torch.nn.Module, batch: torch.Tensor, repeats: int) -> float:
    """Median time of ``repeats`` forward passes over ``batch``, after one warm-up."""
    with torch.inference_mode():
        model(batch)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def time_in_process(model: torch.nn.Module, repeats: int) -> float:
    return median_seconds(model, torch.randn(BATCH, audio_classifier.CLIP_SAMPLES), repeats)


async def time_served(server: TorchServe, model: str, repeats: int) -> float:
    bodies = [clips.clip("wav", seconds=20, seed=i) for i in range(BATCH)]
    headers = {"Authorization": f"Bearer {read_keys(server.workdir)['inference']}"}
    url = f"{server.inference_url}/predictions/{model}"
    async with httpx.AsyncClient(headers=headers, timeout=300) as client:
        async def round_trip() -> float:
            started = time.perf_counter()
            responses = await asyncio.gather(*(client.post(url, content=b) for b in bodies))
            assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
            return time.perf_counter() - started

        await round_trip()  # warm-up
        return statistics.median([await round_trip() for _ in range(repeats)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="base", choices=sorted(audio_classifier.SIZES))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="results/bench_batch.json")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    results: dict = {"size": args.size, "batch": BATCH, "threads": threads, "seconds": {}}

    model = audio_classifier.from_size(args.size, seed=0).eval()
    traced = engines.trace(model, torch.randn(2, audio_classifier.CLIP_SAMPLES))
    for name, engine in tqdm([("eager", model), ("torchscript", traced)], desc="in-process"):
        results["seconds"][f"in_process_{name}"] = time_in_process(engine, args.repeats)
        print(f"  in-process {name}: {results['seconds'][f'in_process_{name}']:.2f} s", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    store = workdir / "store"
    spec = ArchiveSpec(name="bench_torchscript", family="audio_nsfw", language="xx", workers=1,
                       max_batch_delay_ms=200, intra_op_threads=threads)
    with tqdm([spec], desc="archive") as progress:
        build_one(spec, BuildOptions(export_dir=store, size=args.size, check_batch_sizes=(2,)),
                  progress)
    server = TorchServe(workdir=workdir / "ts", model_store=store,
                        ports=(free_port(), free_port(), free_port()))
    try:
        server.start(models=[spec.name], timeout_s=600)
        print("  through TorchServe ...", flush=True)
        results["seconds"]["torchserve_torchscript"] = asyncio.run(
            time_served(server, spec.name, args.repeats))
    finally:
        server.stop()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\none batch of {BATCH} x 20 s clips, wav2vec2-{args.size} (random weights), "
          f"{threads} threads, median of {args.repeats}")
    seconds = results["seconds"]
    print("| path | ms per batch of 8 |\n|---|---|")
    for key, label in (("in_process_eager", "in-process, eager"),
                       ("in_process_torchscript", "in-process, TorchScript (traced, frozen)"),
                       ("torchserve_torchscript", "TorchServe, TorchScript, 8 concurrent requests")):
        print(f"| {label} | {seconds[key] * 1000:.0f} |")
    print(f"traced vs eager in-process: {seconds['in_process_eager'] / seconds['in_process_torchscript']:.2f}x")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
