"""Time one batch of 8 clips, eager vs traced, in-process and through TorchServe.

    python -m scripts.bench_batch [--size base] [--repeats 5] [--out results/bench_batch.json]

Builds two archives of the same random-weight model (one per engine), serves them with one
worker each, sends 8 concurrent 20 s clips per round and reports the median round time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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


def time_in_process(model: torch.nn.Module, repeats: int) -> float:
    batch = torch.randn(BATCH, audio_classifier.CLIP_SAMPLES)
    with torch.inference_mode():
        model(batch)  # warm-up
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


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

    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    store = workdir / "store"
    names = []
    with tqdm(["eager", "torchscript"], desc="archives") as progress:
        for engine_name in progress:
            spec = ArchiveSpec(name=f"bench_{engine_name}", family="audio_nsfw", language="xx",
                               engine=engine_name, workers=1, max_batch_delay_ms=200,
                               intra_op_threads=threads)
            build_one(spec, BuildOptions(export_dir=store, size=args.size, check_batch_sizes=(2,)),
                      progress)
            names.append(spec.name)
    server = TorchServe(workdir=workdir / "ts", model_store=store,
                        ports=(free_port(), free_port(), free_port()))
    try:
        server.start(models=names, timeout_s=600)
        for name in tqdm(names, desc="through TorchServe"):
            seconds = asyncio.run(time_served(server, name, args.repeats))
            results["seconds"][f"torchserve_{name.removeprefix('bench_')}"] = seconds
    finally:
        server.stop()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\none batch of {BATCH} x 20 s clips, wav2vec2-{args.size} (random weights), "
          f"{threads} threads, median of {args.repeats}")
    print("| path | eager | TorchScript (traced) | speed-up |\n|---|---|---|---|")
    for where in ("in_process", "torchserve"):
        eager = results["seconds"][f"{where}_eager"]
        script = results["seconds"][f"{where}_torchscript"]
        print(f"| {where.replace('_', '-')} | {eager * 1000:.0f} ms | {script * 1000:.0f} ms "
              f"| {eager / script:.2f}x |")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
