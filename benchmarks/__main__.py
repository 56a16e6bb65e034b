"""``python -m benchmarks`` (``make bench``): Vigil's speed claims, measured side by side.

A dev tool: it runs from a checkout (``pip install -e .[models,dev]``), starts its own
broker and TorchServes on 127.0.0.1, and stops them when it ends or gets SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from benchmarks.runner import PARTS, run


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run the benchmark parts in order: gate (the share of livestream-like "
        "clips the energy gate keeps from the model, per floor, and the speech it keeps), "
        "engines (eager vs TorchScript, "
        "AOTInductor, OpenVINO and ONNX Runtime at batch 1/2/4/8, fp32/bf16/int8, each with "
        "the accuracy check), e2e (the naive baseline vs Vigil with the auto engine on the "
        "same clips, broker, database and weights), overhead (a trivial model: the serving "
        "path's ceiling, the daemon's CPU share, and TorchServe alone), load (p50/p99 at "
        "25/50/90%% of capacity, and where the time goes) and cost (machines and monthly "
        "cost). Writes results.json, results.md and PNG plots to --out and prints the "
        "Markdown tables; every figure names the CPU's flags.")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--out", default="results/bench", help="folder for JSON, MD and PNG")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="cuda: models on the GPU, GPU utilisation sampled")
    parser.add_argument("--size", default="base", choices=("tiny", "base"),
                        help="e2e: wav2vec2 size (random weights)")
    parser.add_argument("--clips", type=int, default=24, help="e2e: 20 s clips per path")
    parser.add_argument("--engine", default="torchscript",
                        choices=("torchscript", "aotinductor", "openvino", "onnxruntime"),
                        help="e2e: Vigil's engine when --precision is not auto")
    parser.add_argument("--precision", default="auto",
                        choices=("auto", "fp32", "bf16", "fp16", "int8"),
                        help="e2e: Vigil's precision; auto: the fastest engine x precision "
                        "that passed the accuracy check in the engines part")
    parser.add_argument("--tolerance", type=float, default=1e-3,
                        help="e2e: max |score difference| between the paths at fp32")
    parser.add_argument("--layout", default="auto", choices=("auto", "manifest"),
                        help="e2e: auto: the build times every workers x threads split of "
                        "this machine's cores and serves the fastest; manifest: --workers x "
                        "--threads")
    parser.add_argument("--workers", type=int, default=0,
                        help="TorchServe workers per model (0: one per core); e2e with "
                        "--layout manifest, and load")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads per worker (the baseline uses every core); "
                        "e2e with --layout manifest, and load")
    parser.add_argument("--batch-delay-ms", type=int, default=20,
                        help="TorchServe's max batch delay for the model archives (the "
                        "manifest's default)")
    parser.add_argument("--energy-gate-dbfs", type=float, default=-60.0,
                        help="e2e: Vigil's energy gate (the manifest's); the run without it "
                        "is measured beside it")
    parser.add_argument("--no-energy-gate", dest="energy_gate_dbfs", action="store_const",
                        const=None, help="e2e: Vigil without the energy gate only")
    parser.add_argument("--screen", metavar="TRAINED_DIR",
                        help="gate and e2e: a cascade's screen, from the --out folder of "
                        "`vigil train audio --screen-budget-s` (its metrics.json names the "
                        "screen and its threshold): what it answers alone on the gate's "
                        "clips, and a third e2e run with the gate and the screen")
    parser.add_argument("--gate-clips", type=int, default=400,
                        help="gate: livestream-like clips the energy gate is judged on")
    parser.add_argument("--engine-size", default="base", choices=("tiny", "base"),
                        help="engines: wav2vec2 size")
    parser.add_argument("--repeats", type=int, default=1, help="engines: timed runs per point")
    parser.add_argument("--overhead-messages", type=int, default=3000,
                        help="overhead: timed 1 s clips through the trivial model")
    parser.add_argument("--overhead-warmup", type=int, default=2000,
                        help="overhead: clips before the timing starts (JVM warm-up)")
    parser.add_argument("--overhead-workers", type=int, default=2,
                        help="overhead: TorchServe workers for the trivial model")
    parser.add_argument("--profile", action="store_true",
                        help="overhead: record the daemon with py-spy during each timed run "
                        "(collapsed stacks under --out/profiles, hottest functions in the "
                        "report)")
    parser.add_argument("--load-size", default="tiny", choices=("tiny", "base"),
                        help="load: wav2vec2 size")
    parser.add_argument("--load-burst", type=int, default=160,
                        help="load: clips in the burst that measures capacity")
    parser.add_argument("--load-seconds", type=float, default=20.0,
                        help="load: seconds of steady traffic per load level")
    parser.add_argument("--streams", type=int, default=10_000, help="cost: live streams")
    parser.add_argument("--clip-interval-s", type=float, default=20.0,
                        help="cost: one clip per stream every this many seconds")
    parser.add_argument("--price-per-hour", type=float, default=1.0,
                        help="cost: price of one machine like this one, per hour")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # httpx logs every request at INFO: the progress bars' metric polls, ten a second.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.workers == 0:
        args.workers = os.cpu_count() or 1
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
