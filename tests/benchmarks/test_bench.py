"""The benchmark's bookkeeping: the figures it reports must come from what it measured."""

import argparse

import pytest

from benchmarks import cost, e2e, engines, load, profile, report, trace
from benchmarks.runner import chosen_pair
from tests.benchmarks.screens import saved_screen


def test_cost_projection_rounds_machines_up_and_prices_a_month():
    projection = cost.project(0.3, streams=10_000, clip_interval_s=20, price_per_hour=2.0)
    assert projection["clips_per_s_needed"] == 500
    assert projection["machines"] == 1667  # 500 / 0.3 = 1666.7
    assert projection["monthly_cost"] == pytest.approx(1667 * 2.0 * 730)


def test_cost_projection_refuses_a_zero_throughput():
    with pytest.raises(ValueError):
        cost.project(0.0, streams=1, clip_interval_s=20, price_per_hour=1.0)


def test_latency_percentiles_come_from_created_and_scored_times():
    events = [{"created_at": "2026-11-28T10:00:00.000Z",
               "scored_at": f"2026-11-28T10:00:{i:02d}.000Z"} for i in range(1, 11)]
    assert load.latencies(events) == {"p50_s": 5.5, "p99_s": 10.0}


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert trace.percentile(values, 0.99) == 99
    assert trace.percentile(values, 0.0) == 1
    assert trace.percentile([7.0], 0.99) == 7.0


DAEMON_METRICS = """# TYPE vigil_batch_wait_seconds histogram
vigil_batch_wait_seconds_sum{{pipeline="audio"}} {wait}
vigil_batch_wait_seconds_count{{pipeline="audio"}} {batches}
# TYPE vigil_inference_seconds histogram
vigil_inference_seconds_sum{{model="a"}} {model_a}
vigil_inference_seconds_count{{model="a"}} {requests}
vigil_inference_seconds_sum{{model="b"}} {model_b}
vigil_inference_seconds_count{{model="b"}} {requests}
"""
SERVER_METRICS = """# TYPE ts_queue_latency_microseconds counter
ts_queue_latency_microseconds{{model_name="a",model_version="default"}} {queued}
# TYPE ts_inference_latency_microseconds counter
ts_inference_latency_microseconds{{model_name="a",model_version="default"}} {served}
# TYPE ts_inference_requests_total counter
ts_inference_requests_total{{model_name="a",model_version="default"}} {requests}
"""


def reading(wait, batches, model_a, model_b, requests, queued, served) -> trace.Counters:
    return trace.Counters(trace.totals(
        DAEMON_METRICS.format(wait=wait, batches=batches, model_a=model_a, model_b=model_b,
                              requests=requests),
        SERVER_METRICS.format(queued=queued, served=served, requests=requests)))


def test_the_trace_splits_each_clip_and_averages_each_stage_between_readings():
    events = [{"created_at": "2026-11-28T10:00:00Z", "scored_at": f"2026-11-28T10:00:0{i}Z",
               "latency_ms": 1000 * i - 500} for i in range(1, 4)]
    before = reading(wait=1.0, batches=10, model_a=2.0, model_b=2.0, requests=10,
                     queued=1e6, served=5e6)
    after = reading(wait=1.6, batches=13, model_a=2.9, model_b=2.3, requests=16,
                    queued=1.6e6, served=7.4e6)
    found = trace.breakdown(events, before, after)
    assert found["end_to_end"] == {"p50_ms": 2000, "p99_ms": 3000}
    assert found["broker_and_intake"] == {"p50_ms": 500, "p99_ms": 500}
    assert found["in_daemon"] == {"p50_ms": 1500, "p99_ms": 2500}
    assert found["batch_wait_mean_ms"] == pytest.approx(200)  # 0.6 s over 3 batches
    assert found["model_request_mean_ms"] == pytest.approx(100)  # 1.2 s over 12 requests
    assert found["torchserve_queue_mean_ms"] == pytest.approx(100)  # 0.6 s over 6
    assert found["torchserve_mean_ms"] == pytest.approx(400)  # 2.4 s over 6


def test_a_stage_without_requests_has_no_mean():
    same = reading(wait=1.0, batches=1, model_a=1.0, model_b=1.0, requests=1, queued=1, served=1)
    assert trace.breakdown([{"created_at": "2026-11-28T10:00:00Z",
                             "scored_at": "2026-11-28T10:00:01Z", "latency_ms": 10}],
                           same, same)["torchserve_mean_ms"] is None


def events(scores: dict[str, float], seconds: int = 2) -> dict:
    return {"wall_s": 10.0, "cpu_s": 20.0,
            "events": {clip: {"clip_id": clip, "score": score,
                              "created_at": "2026-11-28T10:00:00Z",
                              "scored_at": f"2026-11-28T10:00:0{seconds}Z"}
                       for clip, score in scores.items()}}


def test_comparison_passes_only_when_every_clip_is_scored_alike_by_both_paths():
    baseline = events({"bench-0": 0.40, "bench-1": 0.70})
    same = events({"bench-0": 0.4001, "bench-1": 0.6999})
    assert e2e.compare(baseline, same, 2, tolerance=1e-3)["scores_match"]
    drifted = events({"bench-0": 0.40, "bench-1": 0.75})
    assert not e2e.compare(baseline, drifted, 2, tolerance=1e-3)["scores_match"]
    missing = e2e.compare(baseline, events({"bench-0": 0.40}), 2, tolerance=1e-3)
    assert missing["missing"] == ["bench-1"] and not missing["scores_match"]


def test_comparison_ratios_are_vigil_over_baseline():
    baseline = events({"bench-0": 0.5})
    vigil = {**events({"bench-0": 0.5}), "wall_s": 2.5, "cpu_s": 5.0}
    compared = e2e.compare(baseline, vigil, 1, tolerance=1e-3)
    assert compared["speedup_clips_per_s"] == pytest.approx(4.0)
    assert compared["cpu_per_clip_ratio"] == pytest.approx(4.0)


def row(engine: str, precision: str, passed: bool, ms: float) -> dict:
    return {"engine": engine, "precision": precision, "passed": passed,
            "batches": {"8": {"ms_per_batch": ms, "clips_per_s": 8000 / ms}}}


def test_auto_takes_the_fastest_pair_that_passed_the_accuracy_check():
    rows = [row("eager", "fp32", True, 10), row("torchscript", "fp32", True, 100),
            row("openvino", "bf16", False, 40), row("openvino", "int8", True, 70)]
    auto = engines.fastest_passing(rows, 8)
    assert (auto["engine"], auto["precision"]) == ("openvino", "int8")
    results = {"engines": {"auto": auto}}
    pick = argparse.Namespace(precision="auto", engine="torchscript")
    assert chosen_pair(pick, results) == ("openvino", "int8")
    assert chosen_pair(pick, {}) == ("torchscript", "fp32")
    fixed = argparse.Namespace(precision="bf16", engine="openvino")
    assert chosen_pair(fixed, results) == ("openvino", "bf16")


def test_report_states_whether_the_latency_target_was_met(tmp_path):
    results = {"machine": {"date": "today", "cpu": "cpu", "cores": 2, "torch": "2.11"},
               "load": {"size": "tiny", "one_batch_s": 0.5, "capacity_clips_per_s": 10.0,
                        "rows": [{"fraction": 0.5, "clips_per_s": 5.0, "clips": 100,
                                  "scored": 100, "p50_s": 0.4, "p99_s": 1.2}]}}
    text = report.markdown(results)
    assert "NOT met" in text and "1,200 ms" in text
    results["load"]["rows"][0]["p99_s"] = 0.9
    assert "NOT met" not in report.markdown(results)
    assert [p.name for p in report.plots(results, tmp_path)] == ["latency.png"]
    assert (tmp_path / "latency.png").stat().st_size > 0


def test_the_benchmark_command_answers_help():
    from benchmarks.__main__ import make_parser

    with pytest.raises(SystemExit) as exit_info:
        make_parser().parse_args(["--help"])
    assert exit_info.value.code == 0


def test_hottest_functions_rank_own_samples_and_count_each_function_once_per_stack():
    collapsed = "\n".join([
        "main (app.py:10);parse (messages.py:5);loads (json.py:1) 6",
        "main (app.py:10);parse (messages.py:7) 3",
        "main (app.py:12);main (app.py:10);write (sinks.py:9) 1",
    ])
    hottest = profile.hottest(collapsed)
    assert hottest[0] == ("loads (json.py)", 60.0, 60.0)
    assert hottest[1] == ("parse (messages.py)", 30.0, 90.0)
    assert ("write (sinks.py)", 10.0, 10.0) in hottest
    assert profile.hottest("main (app.py:10) 4")[0] == ("main (app.py)", 100.0, 100.0)


def test_clips_the_energy_gate_kept_from_the_model_are_not_held_against_the_scores():
    baseline = events({"bench-0": 0.40, "bench-1": 0.70})
    vigil = events({"bench-0": 0.4001, "bench-1": 0.0})
    vigil["events"]["bench-1"]["scored_by"] = "energy_gate"
    compared = e2e.compare(baseline, vigil, 2, tolerance=1e-3)
    assert compared["scores_match"] and compared["gated"] == 1
    assert compared["scored_by"] == {"model": 1, "energy_gate": 1}
    vigil["events"]["bench-1"]["scored_by"] = "model"  # a model that said 0.0: a mismatch
    assert not e2e.compare(baseline, vigil, 2, tolerance=1e-3)["scores_match"]
    vigil["events"]["bench-1"]["scored_by"] = "screen"  # a cascade's screen answered alone
    assert e2e.compare(baseline, vigil, 2, tolerance=1e-3)["scores_match"]
    vigil["events"]["bench-0"]["scored_by"] = "screen"  # nothing left to compare: no mismatch
    nothing_compared = e2e.compare(baseline, vigil, 2, tolerance=1e-3)
    assert nothing_compared["scores_match"] and nothing_compared["compared"] == 0


def test_the_livestream_mix_keeps_its_shares_in_any_prefix():
    from benchmarks import livestream

    order = livestream.kinds(50)
    assert livestream.kinds(20) == order[:20]
    for kind, share in livestream.SHARES.items():
        assert abs(order.count(kind) - share * 50) <= 1


def test_the_gate_report_counts_speech_and_positives_kept_from_the_model():
    import numpy as np

    from benchmarks import gate, livestream

    silent = np.zeros(4, np.float32)
    clips = [livestream.LiveClip("speech", True, silent), livestream.LiveClip("speech", False,
                                                                             silent),
             livestream.LiveClip("silence", False, silent),
             livestream.LiveClip("music", False, silent)]
    judged = gate.judge(clips, [-45.0, -20.0, -120.0, -35.0], floor=-40.0)
    assert judged["skipped_share"] == 0.5
    assert (judged["speech_skipped"], judged["positives_skipped"]) == (1, 1)
    assert judged["skipped_by_kind"] == {"music": "0/1", "silence": "1/1", "speech": "1/2"}


def test_onednn_time_is_summed_per_primitive_and_implementation():
    from benchmarks import kernels

    log = "\n".join([
        "onednn_verbose,v1,info,cpu,isa:Intel AVX2",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_inference,"
        "src:f32::blocked:abc::f0,,,mb8ic1oc512,2.5",
        "onednn_verbose,v1,primitive,exec,cpu,convolution,brg_conv_fwd:avx2,forward_inference,"
        "src:f32::blocked:abc::f0,,,mb8ic512oc512,1.5",
        "onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32,,,8x512,0.25",
        "an unrelated line, exec, 3"])
    times = kernels.onednn_times(log)
    assert times == {"convolution: brg_conv_fwd:avx2": 4.0, "reorder: jit:uni": 0.25}
    shares = kernels._shares(times)
    assert shares[0] == {"kernel": "convolution: brg_conv_fwd:avx2", "ms": 4.0,
                         "share": round(4 / 4.25, 3)}


def test_the_screen_report_counts_what_it_answers_alone_behind_the_gate(tmp_path):
    import numpy as np

    from benchmarks import livestream, screening

    loud = np.random.default_rng(0).standard_normal(16_000).astype(np.float32) * 0.1
    clips = [livestream.LiveClip("speech", True, loud), livestream.LiveClip("speech", False,
                                                                            loud),
             livestream.LiveClip("silence", False, np.zeros(16_000, np.float32)),
             livestream.LiveClip("music", False, loud)]
    levels = [-20.0, -20.0, -120.0, -20.0]
    everything = screening.judge(clips, levels, -60.0,
                                 saved_screen(tmp_path / "strict", threshold=1.0))
    assert (everything["behind_gate"], everything["answered_alone"]) == (3, 3)
    assert everything["answered_alone_share"] == 0.75
    assert everything["by_kind"] == {"music": "1/1", "speech": "2/2"}
    assert (everything["positives_behind_gate"], everything["positives_answered_alone"]) == (1, 1)
    nothing = screening.judge(clips, levels, -60.0,
                              saved_screen(tmp_path / "open", threshold=0.0))
    assert nothing["answered_alone"] == 0 and nothing["positives_answered_alone"] == 0
    assert "model" not in nothing and screening.model_of(tmp_path / "open") is None
    # Against the model it screens for (here one that flags everything): every one of its
    # positives the strict screen answers alone is recall the cascade loses.
    trained = saved_screen(tmp_path / "with-model", threshold=1.0, model_threshold=0.0)
    judged = screening.judge(clips, levels, -60.0, trained)
    against = judged["model"]
    assert (against["model_positives"], against["model_positives_kept"]) == (3, 0.0)
    assert (against["recall_model"], against["recall_cascade"]) == (1.0, 0.0)
    assert "Of the 3 clips its model" in report.screen_section(judged)
    assert "it answers 3 alone: recall 100.0% with the model alone, 0.0% with the " \
        "cascade" in report.screen_section(judged)


def test_a_trained_folder_without_a_screen_is_refused(tmp_path):
    from benchmarks import screening

    (tmp_path / "metrics.json").write_text("{}")
    with pytest.raises(SystemExit, match="no screen"):
        screening.from_training(tmp_path)


def test_trimming_measures_the_quiet_ends_of_the_clips_the_gate_passes():
    import numpy as np

    from benchmarks import gate, livestream

    rate = livestream.SAMPLE_RATE_HZ
    quiet_ends = np.zeros(rate * 4, np.float32)
    quiet_ends[rate: rate * 2] = 0.1  # audible for the second second only
    loud = np.full(rate * 4, 0.1, np.float32)
    assert gate.trimmable_share(quiet_ends, -60.0) == pytest.approx(0.75)
    assert gate.trimmable_share(loud, -60.0) == 0.0
    clips = [livestream.LiveClip("speech", True, quiet_ends),
             livestream.LiveClip("music", False, loud),
             livestream.LiveClip("silence", False, np.zeros(rate * 4, np.float32))]
    trim = gate.trimming(clips, gate.levels(clips), -60.0)
    assert trim["clips"] == 2  # the silence never passes the gate
    assert trim["mean_share"] == pytest.approx(0.375)
    assert trim["by_kind"] == {"music": 0.0, "speech": 0.75}
    assert "would cut 37.5%" in report.trimming_line(trim)
