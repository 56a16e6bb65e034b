"""Run the chosen parts of ``vigil bench``; write JSON, PNGs and print Markdown."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
from collections import Counter
from pathlib import Path

import psutil
import torch

from benchmarks import (
    cost,
    e2e,
    engines,
    gate,
    load,
    machine,
    overhead,
    report,
    screening,
    stack,
)
from benchmarks.gpu import UtilisationSampler
from modelzoo.manifest import ArchiveSpec
from scripts import clips, harness

PARTS = ("gate", "engines", "e2e", "overhead", "load", "cost")


def describe_machine(device: str) -> dict:
    info = {**machine.describe(device), "torch": torch.__version__}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def chosen_pair(args: argparse.Namespace, results: dict) -> tuple[str, str]:
    """``--engine``/``--precision``; with ``--precision auto``, what the build's auto would
    pick here: the fastest engine x precision whose accuracy check passed in the engines
    part (TorchScript fp32 when that part did not run)."""
    if args.precision != "auto":
        return args.engine, args.precision
    auto = results.get("engines", {}).get("auto")
    return (auto["engine"], auto["precision"]) if auto else ("torchscript", "fp32")


def run_vigil(args: argparse.Namespace, workdir: Path, bootstrap: str, messages: list[dict],
              engine: str, precision: str, gate_dbfs: float | None,
              served_like: ArchiveSpec | None = None,
              screen: dict | None = None) -> tuple[dict, ArchiveSpec]:
    """Vigil's run over ``messages`` with an archive built for it (energy gate or not, a
    cascade's screen or not), and the archive's spec as served. ``served_like``: serve with
    that archive's layout instead of choosing one again."""
    label = "no energy gate" if gate_dbfs is None else f"energy gate at {gate_dbfs:g} dBFS"
    label += ", a screen in front" if screen else ""
    layout = {"workers": args.workers, "threads": args.threads, "layout": args.layout}
    if served_like is not None:
        layout = {"workers": served_like.workers, "threads": served_like.intra_op_threads,
                  "max_rows": served_like.options.get("max_rows", 0), "layout": "manifest"}
    harness.step(f"Vigil: TorchServe, {engine} {precision}, batches of 8, {label}, "
                 + ("the layout chosen by the build" if layout["layout"] == "auto" else
                    f"{layout['workers']} worker(s) x {layout['threads']} threads"))
    name = ("gated" if gate_dbfs is not None else "plain") + ("-screened" if screen else "")
    store = workdir / f"store-e2e-{name}"
    spec = e2e.build_archive(store, size=args.size, batch_delay_ms=args.batch_delay_ms,
                             engine=engine, precision=precision, energy_gate_dbfs=gate_dbfs,
                             screen=screen, **layout)
    with stack.served(workdir, bootstrap, store=store, model=e2e.MODEL,
                      topic_prefix=f"vigil-{name}") as path:
        return e2e.run_vigil(path, messages), spec


def run_e2e(args: argparse.Namespace, workdir: Path, bootstrap: str, results: dict) -> dict:
    """The baseline, then Vigil with the energy gate (the headline) and, beside it, without
    (served with the same layout)."""
    messages = e2e.make_clips(args.clips)
    baseline = e2e.run_baseline(workdir, bootstrap, messages, size=args.size,
                                threads=psutil.cpu_count(), device=args.device)
    engine, precision = chosen_pair(args, results)
    tolerance = args.tolerance if precision == "fp32" else 0.01
    gate = args.energy_gate_dbfs
    vigil, spec = run_vigil(args, workdir, bootstrap, messages, engine, precision, gate)
    compared = e2e.compare(baseline, vigil, args.clips, tolerance,
                           name="Vigil" if gate is None else f"Vigil, energy gate {gate:g} dBFS")
    if gate is not None:
        plain_run, _ = run_vigil(args, workdir, bootstrap, messages, engine, precision, None,
                                 served_like=spec)
        plain = e2e.compare(baseline, plain_run, args.clips, tolerance,
                            name="Vigil, no energy gate")
        compared["rows"].append(plain["rows"][1])
        compared["without_gate"] = {key: plain[key] for key in (
            "speedup_clips_per_s", "cpu_per_clip_ratio", "max_score_difference",
            "scores_match")}
        compared["scores_match"] = compared["scores_match"] and plain["scores_match"]
    if args.screen:
        cascade = screening.from_training(Path(args.screen))
        screened_run, _ = run_vigil(args, workdir, bootstrap, messages, engine, precision,
                                    gate, served_like=spec, screen=cascade)
        screened = e2e.compare(baseline, screened_run, args.clips, tolerance,
                               name="Vigil, " + ("screen" if gate is None
                                                 else "energy gate and screen"))
        compared["rows"].append(screened["rows"][1])
        compared["with_screen"] = {
            **{key: screened[key] for key in ("speedup_clips_per_s", "cpu_per_clip_ratio",
                                               "max_score_difference", "scores_match",
                                               "scored_by")},
            "screen": cascade, "positives": sum(m["positive"] for m in messages),
            "positives_answered_without_model": sum(
                1 for m in messages if m["positive"] and screened_run["events"].get(
                    m["clip_id"], {}).get("scored_by", "model") != "model")}
        compared["scores_match"] = compared["scores_match"] and screened["scores_match"]
    kinds = dict(Counter(message["kind"] for message in messages))
    return {"size": args.size, "clips": args.clips, "mix": kinds, "engine": engine,
            "precision": precision, "layout_chosen_by_build": args.layout == "auto",
            "workers": spec.workers, "threads": spec.intra_op_threads,
            "rows_per_call": spec.options.get("max_rows", 0), "tolerance": tolerance,
            "energy_gate_dbfs": gate, **compared}


def run_load(args: argparse.Namespace, workdir: Path, bootstrap: str, results: dict) -> dict:
    store = workdir / "store-load"
    engine, precision = chosen_pair(args, results)
    e2e.build_archive(store, size=args.load_size, workers=args.workers, threads=args.threads,
                      batch_delay_ms=args.batch_delay_ms, engine=engine, precision=precision)
    bodies = e2e.make_clips(16)
    with stack.served(workdir, bootstrap, store=store, model=e2e.MODEL,
                      topic_prefix="load") as path:
        audio = [clips.clip("flac", seconds=20, seed=i) for i in range(8)]
        one_batch = load.one_batch_seconds(path, e2e.MODEL, audio)
        burst = [{**bodies[i % len(bodies)], "clip_id": f"burst-{i}"}
                 for i in range(args.load_burst)]
        capacity = load.capacity(path, burst, "load: measuring capacity")
        rows = load.run(path, bodies, capacity_clips_per_s=capacity, seconds=args.load_seconds)
    return {"size": args.load_size, "engine": engine, "precision": precision,
            "one_batch_s": one_batch,
            "capacity_clips_per_s": capacity, "rows": rows}


def run_cost(args: argparse.Namespace, results: dict) -> dict:
    rows = results["e2e"]["rows"]
    paths = {row["path"]: cost.project(row["clips_per_s"], streams=args.streams,
                                       clip_interval_s=args.clip_interval_s,
                                       price_per_hour=args.price_per_hour) for row in rows}
    return {"streams": args.streams, "clip_interval_s": args.clip_interval_s,
            "price_per_hour": args.price_per_hour,
            "clips_per_s_needed": args.streams / args.clip_interval_s, "paths": paths}


def run(args: argparse.Namespace) -> int:
    """Run ``args.parts`` in a fixed order; returns 1 when a result check failed."""
    parts = [part for part in PARTS if part in args.parts]
    if "cost" in parts and "e2e" not in parts:
        raise SystemExit("the cost projection needs the e2e part's throughputs")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: CUDA is not available to torch on this machine")
    if args.screen:  # refused now, not after the parts before the screen's have run
        screening.from_training(Path(args.screen))
    # SIGTERM unwinds like Ctrl-C, so the broker, TorchServe and daemon are stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    out = Path(args.out)
    results: dict = {"machine": describe_machine(args.device), "parts": parts}
    workdir = Path(tempfile.mkdtemp(prefix="vigil-bench-"))
    sampler = UtilisationSampler() if args.device == "cuda" else contextlib.nullcontext()
    with sampler, stack.broker(workdir) as broker:
        for number, part in enumerate(parts, start=1):
            harness.step(f"part {number}/{len(parts)}: {part}")
            if args.device == "cuda":
                sampler.samples.clear()
            if part == "gate":
                results[part] = gate.run(args.gate_clips,
                                         screen=Path(args.screen) if args.screen else None)
            elif part == "engines":
                results[part] = engines.run(size=args.engine_size, repeats=args.repeats,
                                            device=args.device)
            elif part == "e2e":
                results[part] = run_e2e(args, workdir, broker.bootstrap, results)
            elif part == "overhead":
                results[part] = overhead.run_modes(workdir, broker.bootstrap,
                                                   count=args.overhead_messages,
                                                   warmup=args.overhead_warmup,
                                                   workers=args.overhead_workers,
                                                   batch_delay_ms=5,
                                                   profiles=out / "profiles"
                                                   if args.profile else None)
            elif part == "load":
                results[part] = run_load(args, workdir, broker.bootstrap, results)
            else:
                results[part] = run_cost(args, results)
            if args.device == "cuda":
                results[part]["gpu"] = sampler.summary()
            harness.write_results(results, out / "results.json")
    text = report.markdown(results)
    (out / "results.md").write_text(text)
    for path in report.plots(results, out):
        print(f"plot: {path}")
    print(f"\n{text}")
    return 0 if results.get("e2e", {}).get("scores_match", True) else 1
