import pytest

from orchestrator.config import load_config, options
from orchestrator.errors import ConfigError


def test_file_then_environment_override_defaults(tmp_path):
    path = tmp_path / "vigil.yaml"
    path.write_text("kafka: {group_id: from-file, input_topic: in}\nbatch: {max_wait_s: 0.5}\n")
    config = load_config(path, {"VIGIL_KAFKA_GROUP_ID": "from-env",
                                "VIGIL_ROUTING_LANGUAGES": "hi, ta",
                                "VIGIL_KAFKA_EXTRA": '{"security.protocol": "SSL"}',
                                "DATABASE_URL": "postgresql://db/vigil"})
    assert config.kafka.group_id == "from-env"
    assert config.kafka.input_topic == "in" and config.kafka.dlq_topic == "in.dlq"
    assert config.batch.max_wait_s == 0.5 and config.batch.max_size == 8
    assert config.routing.languages == ("hi", "ta")
    assert config.database_url == "postgresql://db/vigil"
    settings = config.kafka.consumer_settings()
    assert settings["security.protocol"] == "SSL"
    assert settings["enable.auto.offset.store"] is False
    assert settings["session.timeout.ms"] == 6000


@pytest.mark.parametrize("text, env, message", [
    ("colour: red\n", {}, "unknown config sections"),
    ("kafka: {groupid: x}\n", {}, "unknown keys"),
    ("", {"VIGIL_BATCH_MAX_SIZE": "lots"}, "cannot read"),
    ("", {"VIGIL_BATCH_MAX_SIZE": "12"}, "max_size"),
])
def test_bad_settings_are_refused_with_a_reason(tmp_path, text, env, message):
    path = tmp_path / "vigil.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, env)


def test_every_setting_has_an_environment_variable():
    rows = options()
    assert ("database_url", "DATABASE_URL", "sqlite:///vigil.db") in rows
    assert all(env.startswith("VIGIL_") or env == "DATABASE_URL" for _, env, _ in rows)
    assert len({env for _, env, _ in rows}) == len(rows)


def test_each_pipeline_has_its_own_topic_defaults_and_files_still_win(tmp_path):
    minview = load_config(environ={}, pipeline="minview")
    assert (minview.kafka.input_topic, minview.kafka.output_topic, minview.kafka.group_id) == \
        ("posts.views", "review.queue", "vigil-minview")
    assert load_config(environ={}, pipeline="vrt").kafka.input_topic == "posts.created"
    path = tmp_path / "c.yaml"
    path.write_text("kafka: {input_topic: views.eu}\n")
    assert load_config(path, environ={}, pipeline="minview").kafka.input_topic == "views.eu"


def test_triage_nets_are_read_as_increasing_integers():
    config = load_config(environ={"VIGIL_TRIAGE_NETS": "1000, 5000"})
    assert config.triage.nets == (1000, 5000)
    with pytest.raises(ConfigError, match="increasing"):
        load_config(environ={"VIGIL_TRIAGE_NETS": "2000,1000"})


@pytest.mark.parametrize("env, message", [
    ({"VIGIL_TORCHSERVE_TIMEOUT_S": "0"}, "torchserve.timeout_s must be positive"),
    ({"VIGIL_MEDIA_TIMEOUT_S": "-1"}, "media.timeout_s must be positive"),
    ({"VIGIL_RUNTIME_DRAIN_TIMEOUT_S": "0"}, "runtime.drain_timeout_s must be positive"),
    ({"VIGIL_RUNTIME_MAX_IN_FLIGHT": "0"}, "runtime.max_in_flight must be positive"),
    ({"VIGIL_TORCHSERVE_BACKOFF_S": "2", "VIGIL_TORCHSERVE_BACKOFF_MAX_S": "1"},
     "backoff_max_s \\(1.0\\) must not be below torchserve.backoff_s \\(2.0\\)"),
    ({"VIGIL_TORCHSERVE_BATCH_REQUESTS": "ture"}, "'ture' is not a boolean"),
    ({"VIGIL_ROUTING_FALLBACK": "maybe"}, "routing.fallback: 'maybe' is not a boolean"),
    ({"VIGIL_RUNTIME_METRICS_PORT": "70000"}, "metrics_port must be a port"),
    ({"VIGIL_KAFKA_INPUT_TOPIC": ""}, "kafka.input_topic must not be empty"),
    ({"VIGIL_DRIFT_WINDOW": "100", "VIGIL_DRIFT_MIN_SCORES": "500"},
     "drift.min_scores \\(500\\) must not exceed drift.window \\(100\\)"),
    ({"VIGIL_ROLLOUT_SHADOW_SAMPLE": "1.5"}, "rollout.shadow_sample must be in \\[0, 1\\]"),
    ({"VIGIL_ROLLOUT_CANARY_STEPS": "0.25,0.05"}, "rollout.canary_steps must be increasing"),
    ({"VIGIL_ROLLOUT_CANARY_STEPS": "0.05,1"}, "rollout.canary_steps must be increasing"),
    ({"VIGIL_ROLLOUT_MAX_SAMPLES": "50"}, "rollout.min_samples \\(100\\) must not exceed"),
    ({"VIGIL_ROLLOUT_CONFIDENCE": "1"}, "rollout.confidence must be in"),
    ({"VIGIL_ROLLOUT_SHADOW_TIMEOUT_S": "0"}, "rollout.shadow_timeout_s must be positive"),
])
def test_start_up_refuses_settings_that_cannot_work(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(environ=env)


@pytest.mark.parametrize("word, value", [("true", True), ("Yes", True), ("1", True),
                                         ("false", False), ("NO", False), ("0", False)])
def test_booleans_read_only_the_usual_words(word, value):
    assert load_config(environ={"VIGIL_TORCHSERVE_BATCH_REQUESTS": word}).torchserve \
        .batch_requests is value


def test_the_history_endpoint_needs_a_token_but_other_daemons_do_not():
    assert load_config(environ={}).triage.history_port == 8091  # audio: never serves it
    with pytest.raises(ConfigError, match="history_token"):
        load_config(environ={}, pipeline="minview").triage.require_history_token()
    load_config(environ={"VIGIL_TRIAGE_HISTORY_PORT": "0"},
                pipeline="minview").triage.require_history_token()
    config = load_config(environ={"VIGIL_TRIAGE_HISTORY_TOKEN": "s3cret-s3cret-s3cret"},
                         pipeline="minview")
    config.triage.require_history_token()
    assert "s3cret" not in repr(config)  # a secret never reaches a log line
