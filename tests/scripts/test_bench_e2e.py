import pytest

from scripts.bench_e2e import latencies, project_cost


def test_cost_projection_rounds_machines_up_and_prices_a_month():
    cost = project_cost(0.3, streams=10_000, clip_interval_s=20, price_per_hour=2.0)
    assert cost["clips_per_s_needed"] == 500
    assert cost["machines"] == 1667  # 500 / 0.3 = 1666.7
    assert cost["monthly_cost"] == pytest.approx(1667 * 2.0 * 730)


def test_latency_percentiles_come_from_created_and_scored_times():
    events = {str(i): {"created_at": "2026-11-28T10:00:00.000Z",
                       "scored_at": f"2026-11-28T10:00:{i:02d}.000Z"} for i in range(1, 11)}
    assert latencies(events) == {"p50_s": 5.5, "p99_s": 10.0}
