"""Which kernels an engine really runs on this machine, and where its time goes.

``python -m benchmarks.kernels`` builds wav2vec2 (random weights) at each OpenVINO
precision this CPU runs natively, runs one batch with OpenVINO's per-node counters on, and
sums the time by kernel (``exec_type``: e.g. ``brgemm_avx512_amx_I8``, ``jit_avx2_FP32``);
then it runs TorchScript fp32 once with ``ONEDNN_VERBOSE`` and sums oneDNN's primitives by
implementation. Under an ISA cap (``ONEDNN_MAX_CPU_ISA=AVX2``) this shows what the cap
reaches: a kernel named after AVX-512 or AMX is one the emulation did not take away.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from benchmarks import machine
from handlers.runtime import cpu_has_native_bf16, isa_cap
from modelzoo import audio_classifier, engines, families

TOP = 8


def _shares(times: dict[str, float]) -> list[dict]:
    total = sum(times.values()) or 1.0
    ranked = sorted(times.items(), key=lambda item: -item[1])[:TOP]
    return [{"kernel": name, "ms": round(ms, 1), "share": round(ms / total, 3)}
            for name, ms in ranked]


def openvino_kernels(model, batch: torch.Tensor, precision: str, threads: int) -> list[dict]:
    """OpenVINO's time per kernel over one batch, after a warm-up."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as folder:
        built = engines.build("openvino", precision, model, batch[:2], Path(folder) / "b",
                              families.calibration("audio_nsfw", model))
        artifact = built.save(Path(folder))
        hint = "bf16" if precision == "bf16" else "f32"
        compiled = ov.Core().compile_model(str(artifact.serialized), "CPU", {
            "PERF_COUNT": True, "INFERENCE_PRECISION_HINT": hint,
            "INFERENCE_NUM_THREADS": threads})
        request = compiled.create_infer_request()
        request.infer([batch.numpy()])
        request.infer([batch.numpy()])
        times: dict[str, float] = defaultdict(float)
        for node in request.profiling_info:
            times[f"{node.node_type}: {node.exec_type}"] += node.real_time.total_seconds() * 1e3
    return _shares(times)


def onednn_kernels(size: str, threads: int, batch_size: int) -> list[dict]:
    """oneDNN's primitives in TorchScript fp32 over one batch, by implementation, from its
    verbose log (a child process: the variable is read when oneDNN starts)."""
    code = ("import pathlib, tempfile, torch; from modelzoo import audio_classifier, engines;"
            f"torch.set_num_threads({threads});"
            f"m = audio_classifier.from_size({size!r}, seed=0).eval();"
            f"x = m.example({batch_size});"
            "t = engines.build('torchscript', 'fp32', m, x[:2], pathlib.Path(tempfile.mkdtemp()));"
            "t(x); print('--- timed ---', flush=True); t(x)")
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, check=True).stdout
    return _shares(onednn_times(output.split("--- timed ---", 1)[-1]))


def onednn_times(log: str) -> dict[str, float]:
    """Milliseconds per ``primitive: implementation`` in a ``ONEDNN_VERBOSE=1`` log."""
    times: dict[str, float] = defaultdict(float)
    for line in log.splitlines():
        fields = line.split(",")
        if fields[0] == "onednn_verbose" and "exec" in fields:
            at = fields.index("exec")
            if len(fields) > at + 3:
                times[f"{fields[at + 2]}: {fields[at + 3]}"] += float(fields[-1])
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__)
    parser.add_argument("--size", default="base", choices=("tiny", "base"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="results/kernels.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = audio_classifier.from_size(args.size, seed=0).eval()
    batch = model.example(args.batch)
    # Under an ISA cap OpenVINO's own kernels and the capped oneDNN disagree, and it crashes.
    precisions = [] if isa_cap() else ["fp32", "int8", *(["bf16"] if cpu_has_native_bf16()
                                                          else [])]
    result = {"machine": machine.describe("cpu"), "size": args.size, "batch": args.batch,
              "threads": args.threads,
              "openvino": {p: openvino_kernels(model, batch, p, args.threads)
                           for p in precisions},
              "onednn_torchscript_fp32": onednn_kernels(args.size, args.threads, args.batch)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
