from orchestrator.serving.torchserve import PART_OVERHEAD_BYTES, pack


def test_bodies_are_packed_in_order_under_the_limit():
    bodies = [bytes([i]) * 100 for i in range(7)]
    limit = 3 * (100 + PART_OVERHEAD_BYTES)
    groups = pack(bodies, limit)
    assert [len(group) for group in groups] == [3, 3, 1]
    assert [body for group in groups for body in group] == bodies


def test_a_body_over_the_limit_goes_alone():
    small, big = b"s" * 10, b"b" * 5000
    assert pack([small, big, small, small], 1000) == [[small], [big], [small, small]]


def test_everything_fits_in_one_request():
    bodies = [b"a" * 10] * 8
    assert pack(bodies, 1 << 24) == [bodies]


def test_nothing_to_send_makes_no_request():
    assert pack([], 1000) == []


def test_a_client_capped_at_one_attempt_keeps_its_config_s_budget_and_backoff():
    from orchestrator.config import TorchServeConfig
    from orchestrator.serving import TorchServeClient

    config = TorchServeConfig(retry_budget_s=7.0, backoff_s=0.3)
    retry = TorchServeClient(config, max_attempts=1).retry.config
    assert (retry.max_attempts, retry.budget_s, retry.backoff_s) == (1, 7.0, 0.3)
    assert TorchServeClient(config).retry.config.max_attempts is None
