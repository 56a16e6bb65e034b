"""The catalogue the daemons route by: languages, fallback, versions, and what is refused."""

import json

import pytest

from orchestrator.catalogue import Catalogue, ModelEntry, Router, check_request_timeout
from orchestrator.config import AppConfig, BatchConfig, RoutingConfig, TorchServeConfig
from orchestrator.errors import ConfigError, UnknownLanguage, UnknownVersion
from tests.orchestrator.fakes import CATALOGUE


def test_routing_follows_the_catalogue_languages_and_its_wildcard_archive():
    router = Router.for_audio(CATALOGUE, RoutingConfig())
    assert router.route("hi").name == "audio_nsfw_hi"
    assert router.route("sw").name == "audio_nsfw_multi"
    assert sorted(m.name for m in router.models) == ["audio_nsfw_hi", "audio_nsfw_multi",
                                                     "audio_nsfw_ta"]
    assert router.route("hi").path == "/predictions/audio_nsfw_hi/1.0"


def test_a_configured_language_no_archive_serves_fails_at_start_up():
    with pytest.raises(ConfigError, match="'te'"):
        Router.for_audio(CATALOGUE, RoutingConfig(languages=("hi", "te")))


def test_without_the_fallback_an_unknown_language_is_a_dead_letter():
    router = Router.for_audio(CATALOGUE, RoutingConfig(languages=("hi",), fallback=False))
    assert [m.name for m in router.models] == ["audio_nsfw_hi"]
    with pytest.raises(UnknownLanguage):
        router.route("ta")


def test_the_live_version_is_the_one_served(tmp_path):
    old = ModelEntry(name="m", version="1.0", family="audio_nsfw", file="m-1.0.mar")
    new = ModelEntry(name="m", version="1.1", family="audio_nsfw", file="m-1.1.mar")
    catalogue = Catalogue([old, new], {"m": "1.1"})
    assert catalogue.live("m") is new and catalogue.version("m", "1.0") is old
    with pytest.raises(ConfigError, match="never built"):
        Catalogue([old], {"m": "2.0"})


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the model catalogue"),
    ("{not json", "cannot read"),
    (json.dumps({"format": 99, "models": [], "live": {}}), "format 99"),
    (json.dumps({"format": 1, "models": [{"name": "m"}], "live": {}}), "cannot read"),
])
def test_a_missing_or_broken_catalogue_is_a_clear_start_up_error(tmp_path, content, message):
    path = tmp_path / "catalogue.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        Catalogue.load(path)


def test_a_candidate_is_recorded_beside_the_live_version_and_must_have_been_built(tmp_path):
    from modelzoo import catalogue as built

    for version, candidate in (("1.0", False), ("1.1", True)):
        (tmp_path / f"m-{version}.mar").write_bytes(b"archive")
        built.record(tmp_path, {"name": "m", "version": version, "family": "audio_nsfw",
                                "file": f"m-{version}.mar"}, candidate=candidate)
    loaded = Catalogue.load(tmp_path / built.FILE_NAME)
    assert loaded.live("m").version == "1.0" and loaded.candidates == {"m": "1.1"}
    with pytest.raises(ConfigError, match="candidate m 2.0 was never built"):
        Catalogue([loaded.live("m")], {"m": "1.0"}, {"m": "2.0"})


def test_a_promoted_candidate_is_made_live_in_the_catalogue(tmp_path):
    from modelzoo import catalogue as built
    from orchestrator.cli import main

    for version, candidate in (("1.0", False), ("1.1", True)):
        (tmp_path / f"m-{version}.mar").write_bytes(b"archive")
        built.record(tmp_path, {"name": "m", "version": version, "family": "audio_nsfw",
                                "file": f"m-{version}.mar"}, candidate=candidate)
    assert main(["build", "--make-live", "m=1.1", "--export-dir", str(tmp_path)]) == 0
    loaded = Catalogue.load(tmp_path / built.FILE_NAME)
    assert loaded.live("m").version == "1.1" and loaded.candidates == {}
    with pytest.raises(SystemExit, match="m 2.0"):
        main(["build", "--make-live", "m=2.0", "--export-dir", str(tmp_path)])


LIMITED = ModelEntry(name="m", version="1.0", family="audio_nsfw", file="m-1.0.mar",
                     limits={"decode_s": 3, "batch_size": 8, "response_timeout_s": 120})


@pytest.mark.parametrize("timeout_s, batch_requests, max_size, refused", [
    (30, False, 8, False),  # 8 x 3 s < 30 s < 120 s
    (20, False, 8, True),  # a batch of slow inputs outlasts the daemon's wait
    (120, False, 8, True),  # TorchServe would kill the worker before the daemon gives up
    (30, True, 8, True),  # 8 requests of 8 clips each: 192 s
    (60, True, 2, False),  # 8 x 2 x 3 s = 48 s
])
def test_the_request_timeout_sits_between_the_handlers_limits_and_torchserves(
        timeout_s, batch_requests, max_size, refused):
    config = AppConfig(torchserve=TorchServeConfig(timeout_s=timeout_s,
                                                   batch_requests=batch_requests),
                       batch=BatchConfig(max_size=max_size))
    if refused:
        with pytest.raises(ConfigError, match="torchserve.timeout_s"):
            check_request_timeout([LIMITED], config)
    else:
        check_request_timeout([LIMITED], config)
    # A catalogue from before the limits were recorded is not held to them.
    check_request_timeout([ModelEntry(name="old", version="1.0", family="audio_nsfw",
                                      file="old-1.0.mar")], config)


def test_a_model_or_version_the_catalogue_lacks_is_unknown_not_a_config_error():
    with pytest.raises(UnknownVersion, match="audio_nsfw_hi 9.9 is not in the catalogue"):
        CATALOGUE.version("audio_nsfw_hi", "9.9")
    with pytest.raises(UnknownVersion, match="no model 'audio_nsfw_xx'"):
        CATALOGUE.live("audio_nsfw_xx")
    assert not issubclass(UnknownVersion, ConfigError)
