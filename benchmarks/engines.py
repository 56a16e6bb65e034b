"""Model engines side by side on the audio classifier: eager and every engine x precision
the build offers (TorchScript, AOTInductor, OpenVINO, ONNX Runtime at fp32, bf16, int8)
at batch 1, 2, 4 and 8, each checked against fp32 eager with the build's accuracy check."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from handlers.audio_io import ClipDecoder
from handlers.runtime import cpu_has_native_bf16, isa_cap
from modelzoo import accuracy, audio_classifier, engines, families
from modelzoo.engine_choice import ENGINES_UNDER_A_CAP
from scripts import clips

BATCH_SIZES = (1, 2, 4, 8)


def time_batches(module: Callable, clips_: torch.Tensor, sizes: Sequence[int], repeats: int,
                 warmups: int) -> dict[int, float]:
    """Median seconds per batch for each size.

    Warm-ups run once, at the first size: at wav2vec2-base a batch takes seconds, so a
    first call's one-off cost matters and a later shape's does not."""
    seconds = {}
    with torch.inference_mode():
        for _ in range(warmups):
            module(clips_[: sizes[0]])
        for size in sizes:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                module(clips_[:size])
                if clips_.is_cuda:  # kernels run asynchronously: wait for them
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
            seconds[size] = statistics.median(times)
    return seconds


def unsupported(engine: str, precision: str, device: str) -> str | None:
    """Why the pair is not worth timing here, or None.

    Without AVX-512 BF16 or AMX, bf16 matmuls are emulated on the CPU and run several times
    slower than fp32 (wav2vec2-base: minutes per point), so they are reported, not timed;
    the serving runtime would fall back to fp32 there anyway."""
    if precision not in engines.SUPPORTED[engine]:
        return f"{engine} offers no {precision}"
    if engine in ("openvino", "onnxruntime") and device != "cpu":
        return "measured on the CPU only"
    if precision == "fp16" and device == "cpu":
        return "fp16 is a GPU precision: a CPU serves the fp32 twin"
    if isa_cap() and engine not in ENGINES_UNDER_A_CAP:
        return (f"not under an ISA cap ({isa_cap()}): {engine} reads the CPU's flags itself, "
                "so its figures would not be the emulated machine's (OpenVINO crashes there)")
    if precision == "bf16" and device == "cpu" and not cpu_has_native_bf16():
        return f"skipped: no native bf16 on this CPU ({torch.backends.cpu.get_cpu_capability()})"
    return None


def benchmark_clips(count: int) -> torch.Tensor:
    """``count`` decoded 20 s FLAC clips, as the audio handler would feed them."""
    decoder = ClipDecoder(sample_rate=audio_classifier.SAMPLE_RATE_HZ,
                          clip_samples=audio_classifier.CLIP_SAMPLES)
    return torch.stack([decoder.decode(clips.clip("flac", seconds=20, seed=i))
                        for i in range(count)])


def run(*, size: str, batch_sizes: Sequence[int] = BATCH_SIZES, repeats: int = 1,
        threshold: float = 0.5, device: str = "cpu") -> dict:
    """ms per batch for eager and every engine x precision at every batch size, each with
    the build's accuracy guard against fp32 eager on the build's check clips
    (representative audio: modelzoo/audio_checks.py)."""
    model = audio_classifier.from_size(size, seed=0).eval().to(device)
    largest = max(batch_sizes)
    benchmark = benchmark_clips(largest).to(device)
    calibration = [batch.to(device) for batch in families.calibration("audio_nsfw", model)]
    checks = [batch.to(device) for batch in families.checks("audio_nsfw", model, (1, 3, 8))]
    eager_checks = accuracy.outputs(model, checks)
    results: dict = {"size": size, "device": device, "threads": torch.get_num_threads(),
                     "repeats": repeats, "accuracy_clips": len(eager_checks), "rows": [],
                     "errors": {}}
    reference_seconds = time_batches(model, benchmark, batch_sizes, repeats, 1)
    results["rows"].append(_row("eager", "fp32", reference_seconds,
                                {"max_difference": 0.0, "agreement": 1.0, "passed": True}))
    steps = [(e, p) for e in engines.ENGINES for p in engines.PRECISIONS]
    with tempfile.TemporaryDirectory(prefix="vigil-engines-") as scratch, \
            tqdm(steps, desc="engines", unit="pair") as progress:
        for engine, precision in progress:
            name = f"{engine} {precision}"
            reason = unsupported(engine, precision, device)
            if reason:
                results["errors"][name] = reason
                continue
            progress.set_postfix_str(f"{name}: building")
            try:
                built = engines.build(engine, precision, model, benchmark[:2],
                                      Path(scratch) / engine / precision, calibration)
            except engines.EngineError as error:  # an engine that does not build is a result
                results["errors"][name] = str(error)[:300]
                continue
            progress.set_postfix_str(f"{name}: timing")
            # TorchScript's profiling executor optimises the graph on its second run.
            seconds = time_batches(built, benchmark, batch_sizes, repeats,
                                   warmups=2 if engine == "torchscript" else 1)
            progress.set_postfix_str(f"{name}: checking")
            check = accuracy.compare("score", eager_checks, accuracy.outputs(built, checks),
                                     threshold)
            results["rows"].append(_row(engine, precision, seconds, check))
    results["auto"] = fastest_passing(results["rows"], largest)
    return results


def fastest_passing(rows: list[dict], batch: int) -> dict:
    """What the build's ``precision: auto`` would pick from these rows: the engine x
    precision (eager aside) fastest at ``batch`` among those whose check passed."""
    passing = [r for r in rows if r["passed"] and r["engine"] != "eager"]
    best = min(passing, key=lambda r: r["batches"][str(batch)]["ms_per_batch"])
    return {"engine": best["engine"], "precision": best["precision"], "batch": batch}


def _row(engine: str, precision: str, seconds: dict[int, float], check: dict) -> dict:
    return {"engine": engine, "precision": precision, **check,
            "batches": {str(b): {"ms_per_batch": 1000 * s, "clips_per_s": b / s}
                        for b, s in seconds.items()}}
