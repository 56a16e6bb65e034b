"""Model engines side by side: eager vs TorchScript vs ``torch.export``/AOTInductor at
batch 1, 2, 4 and 8, then fp32 vs bf16 vs int8 per engine with the accuracy check."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from handlers.audio_io import ClipDecoder
from modelzoo import audio_classifier, engines
from scripts import clips

BATCH_SIZES = (1, 2, 4, 8)
ENGINES = ("eager", "torchscript", "aotinductor")


def time_batches(module: Callable, clips_: torch.Tensor, sizes: Sequence[int], repeats: int,
                 warmups: int) -> tuple[dict[int, float], dict[int, torch.Tensor]]:
    """Median seconds per batch for each size, and each size's scores (the first clips).

    Warm-ups run once, at the first size: at wav2vec2-base a batch takes seconds, so a
    first call's one-off cost matters and a later shape's does not."""
    seconds, scores = {}, {}
    with torch.inference_mode():
        for _ in range(warmups):
            module(clips_[: sizes[0]])
        for size in sizes:
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                scores[size] = module(clips_[:size]).float()
                if clips_.is_cuda:  # kernels run asynchronously: wait for them
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - started)
            seconds[size] = statistics.median(times)
    return seconds, scores


def build_engine(name: str, model: nn.Module, example: torch.Tensor, folder: Path) -> Callable:
    """``eager`` as is, else the engine ``vigil build`` would package."""
    return model if name == "eager" else engines.build(name, model, example, folder / name)


def unsupported(precision: str, device: str) -> str | None:
    """Why ``precision`` is not worth timing on ``device``, or None.

    Without AVX-512 BF16 or AMX, bf16 matmuls are emulated on the CPU and run several times
    slower than fp32 (wav2vec2-base: minutes per point), so they are reported, not timed."""
    if precision == "bf16" and device == "cpu":
        capability = torch.backends.cpu.get_cpu_capability()
        if capability not in ("AVX512_BF16", "AMX") and not _cpu_flag("avx512_bf16"):
            return f"skipped: no native bf16 on this CPU ({capability})"
    return None


def _cpu_flag(flag: str) -> bool:
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def benchmark_clips(count: int) -> torch.Tensor:
    """``count`` decoded 20 s FLAC clips, as the audio handler would feed them."""
    decoder = ClipDecoder(sample_rate=audio_classifier.SAMPLE_RATE_HZ,
                          clip_samples=audio_classifier.CLIP_SAMPLES)
    return torch.stack([decoder.decode(clips.clip("flac", seconds=20, seed=i))
                        for i in range(count)])


def run(*, size: str, batch_sizes: Sequence[int] = BATCH_SIZES, repeats: int = 1,
        precision_batch: int = 2, threshold: float = 0.5, device: str = "cpu") -> dict:
    """ms per batch for every engine x batch size at fp32, and every precision x engine at
    ``precision_batch``; each checked against fp32 eager on the largest batch's clips."""
    model = audio_classifier.from_size(size, seed=0).eval().to(device)
    largest = max(batch_sizes)
    benchmark = benchmark_clips(largest).to(device)
    results: dict = {"size": size, "device": device, "threads": torch.get_num_threads(),
                     "repeats": repeats, "accuracy_clips": largest, "engines": {},
                     "precision": {}, "errors": {}}
    reference = None
    steps = [(engine, precision) for precision in engines.PRECISIONS for engine in ENGINES]
    with tempfile.TemporaryDirectory(prefix="vigil-engines-") as scratch, \
            tqdm(steps, desc="engines", unit="engine") as progress:
        for engine, precision in progress:
            name = f"{precision}/{engine}"
            reason = unsupported(precision, device)
            if reason:
                results["errors"][name] = reason
                continue
            progress.set_postfix_str(f"{name}: building")
            lowered = engines.with_precision(model, precision)
            try:
                module = build_engine(engine, lowered, benchmark[:precision_batch],
                                      Path(scratch) / precision)
            except Exception as error:  # noqa: BLE001 - an engine that does not compile is a result
                results["errors"][name] = f"{type(error).__name__}: {error}"[:300]
                continue
            progress.set_postfix_str(f"{name}: timing")
            # Every engine at fp32 over all batch sizes; lower precisions at one batch size,
            # then once over the largest batch for the accuracy check.
            sizes = batch_sizes if precision == "fp32" else (precision_batch, largest)
            # TorchScript's profiling executor optimises the graph on its second run.
            seconds, scores = time_batches(module, benchmark, sizes, repeats,
                                           warmups=2 if engine == "torchscript" else 1)
            if reference is None:
                reference = scores[largest]  # fp32 eager comes first
            if precision == "fp32":
                results["engines"][engine] = {
                    str(b): {"ms_per_batch": 1000 * s, "clips_per_s": b / s}
                    for b, s in seconds.items()}
            results["precision"][name] = {
                "ms_per_batch": 1000 * seconds[precision_batch], "batch": precision_batch,
                **engines.accuracy_check(reference, scores[largest], threshold)}
    return results
