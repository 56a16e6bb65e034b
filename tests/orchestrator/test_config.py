import pytest

from orchestrator.config import ConfigError, load_config, options


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
