"""The benchmark's results as Markdown tables (stdout, docs) and PNG plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: benchmarks run headless
import matplotlib.pyplot as plt  # noqa: E402

from benchmarks import profile  # noqa: E402


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def e2e_section(e2e: dict) -> str:
    rows = [[r["path"], f"{r['clips_per_s']:.3f}", f"{r['cpu_s_per_clip']:.2f}",
             f"{r['p50_s']:.1f} s", f"{r['p99_s']:.1f} s"] for r in e2e["rows"]]
    check = "match" if e2e["scores_match"] else "MISMATCH"
    mix = ", ".join(f"{count} {kind}" for kind, count in e2e.get("mix", {}).items())
    plain = e2e.get("without_gate")
    chunks = (f", {e2e['rows_per_call']} row(s) per model call" if e2e.get("rows_per_call")
              else "")
    beside = (f"; without the gate {plain['speedup_clips_per_s']:.2f}x clips/s, "
              f"{plain['cpu_per_clip_ratio']:.2f}x clips per CPU-second" if plain else "")
    screened = e2e.get("with_screen")
    if screened:
        beside += (f"; with the gate and a screen {screened['speedup_clips_per_s']:.2f}x "
                   f"clips/s, **{screened['cpu_per_clip_ratio']:.2f}x clips per CPU-second** "
                   f"(scored by {screened['scored_by']}; of {screened['positives']} clips "
                   f"saying a policy word, {screened['positives_answered_without_model']} "
                   "answered without the model)")
    return (f"### End to end: naive baseline vs Vigil ({e2e['clips']} clips of 20 s"
            f"{': ' + mix if mix else ''}; wav2vec2-{e2e['size']}, Vigil at {e2e['engine']} "
            f"{e2e['precision']}, {e2e['workers']} worker(s) x {e2e['threads']} thread(s)"
            f"{chunks})\n\n"
            + table(["path", "clips/s", "CPU-s per clip", "p50 latency", "p99 latency"], rows)
            + f"\n\n{rows[1][0]} vs baseline: **{e2e['speedup_clips_per_s']:.2f}x clips/s, "
            f"{e2e['cpu_per_clip_ratio']:.2f}x clips per CPU-second**{beside}; every clip "
            f"scored by both: {'yes' if not e2e['missing'] else 'NO'}; clips the energy gate "
            f"kept from the model: {e2e.get('gated', 0)}; max |score difference| on the "
            f"others {e2e['max_score_difference']:.1e} ({check})\n")


def gate_section(gate: dict) -> str:
    rows = [[f"{floor['floor_dbfs']:g} dBFS", f"{floor['skipped_share']:.0%}",
             ", ".join(f"{kind} {share}" for kind, share in floor["skipped_by_kind"].items()),
             str(floor["speech_skipped"]), str(floor["positives_skipped"])]
            for floor in gate["floors"]]
    mix = ", ".join(f"{count} {kind}" for kind, count in gate["mix"].items())
    return (f"### Energy gate: {gate['clips']} livestream-like clips of 20 s ({mix}; "
            f"{gate['positives']} say a policy word)\n\n"
            + table(["floor", "kept from the model", "by kind", "speech clips kept",
                     "positives kept"], rows)
            + f"\n\nQuietest speech clip's loudest frame: {gate['quietest_speech_dbfs']:g} "
            f"dBFS (quietest positive {gate['quietest_positive_dbfs']:g} dBFS)\n"
            + trimming_line(gate.get("trimming"))
            + (screen_section(gate["screen"]) if "screen" in gate else ""))


def trimming_line(trim: dict | None) -> str:
    if not trim:
        return ""
    by_kind = ", ".join(f"{kind} {share:.0%}" for kind, share in trim["by_kind"].items())
    return (f"\nTrimming each of the {trim['clips']} clips the gate at {trim['floor_dbfs']:g} "
            f"dBFS passes to its audible span (first to last 20 ms frame at the floor or "
            f"over) would cut {trim['mean_share']:.1%} of the model's input on average "
            f"(by kind: {by_kind}).\n")


def screen_section(screen: dict) -> str:
    by_kind = ", ".join(f"{kind} {share}" for kind, share in screen["by_kind"].items())
    text = (f"\nBehind the gate at {screen['floor_dbfs']:g} dBFS, the screen "
            f"({screen['checkpoint']}, threshold {screen['threshold']:g}) answers "
            f"{screen['answered_alone']} of the {screen['behind_gate']} clips it passes alone "
            f"({screen['answered_alone_share']:.0%} of all clips; by kind: {by_kind}); of the "
            f"{screen['positives_behind_gate']} positives behind the gate it answers "
            f"{screen['positives_answered_alone']} alone.")
    model = screen.get("model")
    if model:
        text += (f" Of the {model['model_positives']} clips its model ({model['checkpoint']}, "
                 f"threshold {model['threshold']:.4f}) flags there, it answers "
                 f"{model['model_positives_answered_alone']} alone: recall "
                 f"{model['recall_model']:.1%} with the model alone, "
                 f"{model['recall_cascade']:.1%} with the cascade.")
    return text + "\n"


def engines_section(engines: dict) -> str:
    sizes = sorted({int(b) for row in engines["rows"] for b in row["batches"]})
    rows = [[f"{row['engine']} {row['precision']}",
             *(f"{row['batches'][str(b)]['ms_per_batch']:,.0f} ms / "
               f"{row['batches'][str(b)]['clips_per_s']:.2f}" for b in sizes),
             f"{row['max_difference']:.4f}", f"{row.get('difference_bound', 0.01):.4f}",
             f"{row.get('correlation', 1.0):.3f}", f"{row['agreement']:.0%}",
             "pass" if row["passed"] else "fail"] for row in engines["rows"]]
    errors = "".join(f"\n- {name}: {error}" for name, error in engines["errors"].items())
    auto = engines["auto"]
    return (f"### Model engines (wav2vec2-{engines['size']}, 20 s clips, {engines['device']}, "
            f"{engines['threads']} threads): ms per batch / clips per s, and the accuracy "
            f"guard against fp32 eager on {engines['accuracy_clips']} representative clips "
            "(max |score diff| within 0.01 and a tenth of eager's spread, correlation >= "
            "0.98, labels >= 99%)\n\n"
            + table(["engine precision", *(f"batch {b}" for b in sizes), "max abs diff",
                     "bound", "correlation", "labels agree", "check"], rows)
            + f"\n\nauto (the fastest passing pair at batch {auto['batch']}): "
            f"**{auto['engine']} {auto['precision']}**\n" + errors + "\n")


def overhead_section(overhead: dict) -> str:
    rows = [[row["requests"], str(row["messages"]), f"{row['clips_per_s']:,.0f}",
             f"{row['daemon_cpu_ms_per_clip']:.2f} ms", f"{row['path_cpu_ms_per_clip']:.2f} ms",
             f"{row['daemon_cpu_share']:.0%}", f"{row['machine_busy']:.0%}",
             f"{row['mean_batch']:.1f}",
             f"{row['torchserve_alone']['clips_per_s']:,.0f}", f"{row['vs_alone']:.2f}x"]
            for row in overhead["modes"]]
    return ("### Serving path with a trivial model (broker + daemon + TorchServe + SQLite)\n\n"
            + table(["TorchServe requests", "timed clips", "clips/s", "daemon CPU per clip",
                     "whole path CPU per clip", "daemon share", "machine busy", "mean batch",
                     "TorchServe alone, clips/s", "path / alone"], rows) + "\n"
            + "".join(profile_table(row) for row in overhead["modes"] if "profile" in row))


def profile_table(row: dict) -> str:
    """The daemon's hottest functions in a profiled run (benchmarks/profile.py)."""
    hottest = profile.hottest(Path(row["profile"]).read_text())
    lines = [[name, f"{own:.1f}%", f"{inclusive:.1f}%"] for name, own, inclusive in hottest]
    return (f"\nThe daemon's hottest functions, {row['requests']} (py-spy, "
            f"{Path(row['profile']).name}):\n\n"
            + table(["function", "own samples", "on the stack"], lines) + "\n")


def load_section(load: dict) -> str:
    rows = [[f"{r['fraction']:.0%}", f"{r['clips_per_s']:.1f}", str(r["clips"]),
             f"{r['p50_s'] * 1000:,.0f} ms", f"{r['p99_s'] * 1000:,.0f} ms"]
            for r in load["rows"]]
    half = next((r for r in load["rows"] if r["fraction"] == 0.5), None)
    verdict = ""
    if half:
        limit = 2 * load["one_batch_s"]
        verdict = (f"\np99 at 50% = {half['p99_s'] * 1000:,.0f} ms vs 2x one batch of 8 = "
                   f"{limit * 1000:,.0f} ms: {'met' if half['p99_s'] <= limit else 'NOT met'}\n")
    return (f"### Latency under load (wav2vec2-{load['size']}, 20 s clips; capacity "
            f"{load['capacity_clips_per_s']:.1f} clips/s; one batch of 8 "
            f"{load['one_batch_s'] * 1000:,.0f} ms)\n\n"
            + table(["load", "clips/s offered", "clips", "p50", "p99"], rows) + "\n" + verdict
            + trace_table(load["rows"]))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def trace_table(rows: list[dict]) -> str:
    """Where a clip's time goes at each load (benchmarks/trace.py)."""
    traced = [r for r in rows if "trace" in r]
    if not traced:
        return ""
    lines = [[f"{r['fraction']:.0%}",
              *(f"{_ms(t[stage]['p50_ms'])} / {_ms(t[stage]['p99_ms'])}"
                for stage in ("broker_and_intake", "in_daemon")),
              *(_ms(t[mean]) for mean in ("batch_wait_mean_ms", "model_request_mean_ms",
                                          "torchserve_mean_ms", "torchserve_queue_mean_ms"))]
             for r in traced for t in [r["trace"]]]
    return ("\nWhere the time goes (p50 / p99 per clip; means per batch or request):\n\n"
            + table(["load", "broker + intake", "in the daemon", "batch wait",
                     "model request", "TorchServe", "of which queued"], lines) + "\n")


def cost_section(cost: dict) -> str:
    rows = [[path, f"{c['machines']:,}", f"{c['monthly_cost']:,.0f}"]
            for path, c in cost["paths"].items()]
    return (f"### Cost projection: {cost['streams']:,} streams, one clip per "
            f"{cost['clip_interval_s']:g} s ({cost['clips_per_s_needed']:,.0f} clips/s), "
            f"{cost['price_per_hour']:g} per machine-hour\n\n"
            + table(["path", "machines", "per month"], rows) + "\n")


SECTIONS = {"gate": gate_section, "e2e": e2e_section, "engines": engines_section, "overhead": overhead_section,
            "load": load_section, "cost": cost_section}


def markdown(results: dict) -> str:
    machine = results["machine"]
    head = (f"## make bench, {machine['date']}: {machine['cpu']}, {machine['cores']} cores, "
            f"CPU flags {' '.join(machine.get('cpu_flags', [])) or 'none of note'}"
            f"{', ' + machine['gpu'] if machine.get('gpu') else ''}, torch {machine['torch']}"
            f"{'; ' + machine['emulation'] if machine.get('emulation') else ''}\n")
    return "\n".join([head, *(render(results[part]) for part, render in SECTIONS.items()
                              if part in results)])


def plots(results: dict, folder: Path) -> list[Path]:
    """One PNG per part that has a curve to show."""
    written = []
    if "engines" in results:
        figure, axis = plt.subplots(figsize=(6, 4))
        for row in results["engines"]["rows"]:
            sizes = sorted(int(b) for b in row["batches"])
            axis.plot(sizes, [row["batches"][str(b)]["clips_per_s"] for b in sizes],
                      marker="o", label=f"{row['engine']} {row['precision']}")
        axis.set(xlabel="batch size", ylabel="clips per second", xticks=[1, 2, 4, 8],
                 title=f"engines, wav2vec2-{results['engines']['size']}")
        axis.legend()
        written.append(_save(figure, folder / "engines.png"))
    if "load" in results:
        rows = results["load"]["rows"]
        figure, axis = plt.subplots(figsize=(6, 4))
        loads = [100 * r["fraction"] for r in rows]
        axis.plot(loads, [1000 * r["p50_s"] for r in rows], marker="o", label="p50")
        axis.plot(loads, [1000 * r["p99_s"] for r in rows], marker="o", label="p99")
        axis.axhline(2000 * results["load"]["one_batch_s"], linestyle="--", color="grey",
                     label="2x one batch of 8")
        axis.set(xlabel="% of capacity", ylabel="end-to-end latency (ms)",
                 title="latency under load")
        axis.legend()
        written.append(_save(figure, folder / "latency.png"))
    if "e2e" in results:
        rows = results["e2e"]["rows"]
        figure, axis = plt.subplots(figsize=(6, 4))
        axis.bar([r["path"] for r in rows], [1 / r["cpu_s_per_clip"] for r in rows])
        axis.set(ylabel="clips per CPU-second", title="baseline vs Vigil")
        written.append(_save(figure, folder / "e2e.png"))
    return written


def _save(figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
