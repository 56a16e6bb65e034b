"""`make bench` (python -m benchmarks, from the checkout) end to end on the tiny model:
both paths score the same clips alike."""

import json
import subprocess
import sys

import pytest

from scripts.services.process import REPO_ROOT
from tests.benchmarks.screens import saved_screen

pytestmark = pytest.mark.integration
BENCH = [sys.executable, "-m", "benchmarks"]


def test_bench_runs_baseline_and_vigil_on_the_same_clips_and_reports_them(tmp_path):
    out = tmp_path / "bench"
    # A screen that answers every clip it sees alone (threshold 1): the third run's glue,
    # with no model call behind the gate.
    strict = saved_screen(tmp_path / "trained", threshold=1.0)
    completed = subprocess.run(
        [*BENCH, "--parts", "e2e", "cost", "--size", "tiny", "--clips", "8",
         "--precision", "fp32", "--streams", "100", "--screen", str(strict), "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    e2e = results["e2e"]
    assert e2e["missing"] == [] and e2e["scores_match"]
    paths = ["baseline (naive)", "Vigil, energy gate -60 dBFS", "Vigil, no energy gate",
             "Vigil, energy gate and screen"]
    assert [row["path"] for row in e2e["rows"]] == paths
    assert [row["clips"] for row in e2e["rows"]] == [8, 8, 8, 8]
    screened = e2e["with_screen"]
    assert screened["scored_by"] == {"energy_gate": e2e["gated"], "screen": 8 - e2e["gated"]}
    assert screened["positives"] == 2 == screened["positives_answered_without_model"]
    assert all(row["cpu_s_per_clip"] > 0 and row["p99_s"] >= row["p50_s"] for row in e2e["rows"])
    # The first eight clips of the mix; the gate takes the silence (and the room tone, when
    # it is quiet enough), never speech, music or noise.
    assert e2e["mix"] == {"speech": 4, "music": 1, "room tone": 1, "noise": 1, "silence": 1}
    assert 1 <= e2e["gated"] <= 2
    assert e2e["layout_chosen_by_build"] and e2e["workers"] * e2e["threads"] >= 1
    assert set(results["cost"]["paths"]) == set(paths)
    assert "Vigil, energy gate -60 dBFS vs baseline" in completed.stdout
    assert (out / "e2e.png").exists()
    assert (out / "results.md").read_text() in completed.stdout


def test_overhead_part_measures_both_request_modes_on_every_clip(tmp_path):
    out = tmp_path / "bench"
    completed = subprocess.run(
        [*BENCH, "--parts", "overhead", "--overhead-messages", "400",
         "--overhead-warmup", "100", "--profile", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    modes = json.loads((out / "results.json").read_text())["overhead"]["modes"]
    assert [row["requests"] for row in modes] == ["one per batch", "one per clip"]
    for row in modes:
        assert 0 < row["messages"] <= 400 and 1 <= row["mean_batch"] <= 8
        assert row["clips_per_s"] > 0
        assert row["path_cpu_ms_per_clip"] > row["daemon_cpu_ms_per_clip"] > 0
        assert 0 < row["daemon_cpu_share"] < 1 and 0 < row["machine_busy"] <= 1
        alone = row["torchserve_alone"]
        assert alone["clips"] == 400 and alone["clips_per_s"] > 0
        assert row["vs_alone"] == pytest.approx(row["clips_per_s"] / alone["clips_per_s"])
        stacks = (out / "profiles" / f"daemon-{row['requests'].replace(' ', '-')}.txt")
        assert "(orchestrator/" in stacks.read_text()  # the daemon's own stacks
    assert "one per batch" in completed.stdout and "hottest functions" in completed.stdout


def test_sigterm_stops_the_bench_and_every_service_it_started(tmp_path):
    import signal
    import time

    import psutil

    bench = psutil.Popen([*BENCH, "--parts", "overhead",
                          "--overhead-messages", "100", "--overhead-warmup", "0",
                          "--out", str(tmp_path)],
                         cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def serving(processes: list[psutil.Process]) -> bool:
        try:
            return any("torchserve" in " ".join(p.cmdline()) for p in processes)
        except psutil.NoSuchProcess:
            return False

    started: list[psutil.Process] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not serving(started):
        time.sleep(0.5)
        started = bench.children(recursive=True)
    assert started, "the bench started no services"
    bench.send_signal(signal.SIGTERM)
    assert bench.wait(120) != 0
    _, alive = psutil.wait_procs(started, timeout=30)
    assert alive == []
