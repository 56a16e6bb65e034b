"""What the optional frame enhancement costs per frame, at CLIP ViT-L/14's 224x224.

    python -m benchmarks.enhance [--frames 60] [--out results/bench_enhance.json]
"""

from __future__ import annotations

import argparse
import time

import torch

from handlers.enhance import FrameEnhancer
from scripts import harness

SETTINGS = {"clahe": {"clahe": True, "dark_below": 256.0},  # every frame counts as dark
            "denoise": {"denoise": True}, "clahe+denoise": {"clahe": True, "denoise": True,
                                                           "dark_below": 256.0}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--out", default="results/bench_enhance.json")
    args = parser.parse_args()
    frames = torch.randint(0, 120, (args.frames, 3, args.size, args.size), dtype=torch.uint8)
    results = {"frames": args.frames, "size": args.size, "ms_per_frame": {}}
    for name, settings in SETTINGS.items():
        enhancer = FrameEnhancer(**settings)
        started = time.perf_counter()
        enhancer(frames)
        results["ms_per_frame"][name] = 1000 * (time.perf_counter() - started) / args.frames
        print(f"{name:<14} {results['ms_per_frame'][name]:8.2f} ms/frame", flush=True)
    harness.write_results(results, args.out)


if __name__ == "__main__":
    main()
