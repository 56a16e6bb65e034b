"""Score drift on real TorchServe, broker and daemon: ``vigil_score_psi`` of a classifier
trained on generated speech stays under the alert line while clips sound like what its
reference was measured on (its held-out clips), and crosses it once they are speech
generated differently (the shifted style: other words, speakers, backgrounds, rooms)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import harness
from scripts.services.tansu import Tansu
from scripts.services.torchserve import TorchServe
from tests.integration.conftest import TrainedClassifier, vigil

pytestmark = pytest.mark.integration
MODEL, VERSION, LANGUAGE = "audio_nsfw_hi", "1.1", "hi"
WINDOW = 200  # drift.window and drift.min_scores: PSI over the last 200 scores
ALERT_PSI = 0.25  # VigilScoreDrift's line


@pytest.fixture(scope="module")
def drift_server(tmp_path_factory: pytest.TempPathFactory,
                 trained_hi: TrainedClassifier) -> Iterator[TorchServe]:
    """TorchServe serving the trained classifier, whose reference is its held-out scores."""
    with TorchServe.running(workdir=tmp_path_factory.mktemp("drift_ts"),
                            model_store=trained_hi.store, models=[MODEL]) as server:
        yield server


def generated(folder: Path, style: str, seed: int) -> list[str]:
    """WINDOW clips of ``style``, six seconds each like the training set's, as file URLs."""
    vigil("audio", "generate", "--language", LANGUAGE, "--clips", str(WINDOW), "--seconds",
          "6", "--style", style, "--seed", str(seed), "--out", str(folder), cwd=folder.parent)
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    return [(folder / line["path"]).as_uri() for line in lines]


def stream(tansu: Tansu, topic: str, name: str, urls: list[str]) -> None:
    messages = [{"clip_id": f"{name}-{i}", "stream_id": f"s{i % 9}", "language": LANGUAGE,
                 "audio_url": url} for i, url in enumerate(urls)]
    harness.produce(tansu.bootstrap, topic,
                    [(m["clip_id"].encode(), json.dumps(m).encode()) for m in messages])


def psi(daemon: harness.Daemon) -> float | None:
    return harness.sample_value(daemon.metrics(), "vigil_score_psi", model=MODEL,
                                version=VERSION, language=LANGUAGE)


def test_psi_stays_under_the_line_on_speech_like_the_reference_and_crosses_it_on_shifted(
        tmp_path, tansu, drift_server, topics):
    media = tmp_path / "media"
    media.mkdir()
    same = generated(media / "same", "training", seed=2000)
    shifted = generated(media / "shifted", "shifted", seed=3000)
    daemon = harness.Daemon(workdir=tmp_path, env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{topics.input}-group", "VIGIL_KAFKA_INPUT_TOPIC": topics.input,
        "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output, **drift_server.client_env(),
        "VIGIL_ROUTING_LANGUAGES": LANGUAGE, "VIGIL_ROUTING_FALLBACK": "false",
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media),
        "VIGIL_MEDIA_MAX_BYTES": "1000000",
        "VIGIL_DRIFT_WINDOW": str(WINDOW), "VIGIL_DRIFT_MIN_SCORES": str(WINDOW),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'vigil.db'}"})
    try:
        daemon.start()
        daemon.wait_ready()
        stream(tansu, topics.input, "same", same)
        harness.wait_until(lambda: harness.handled(daemon.metrics()) >= WINDOW,
                           "the clips like the reference", daemon, timeout_s=300)
        flat = psi(daemon)
        assert flat is not None and flat < ALERT_PSI, flat

        stream(tansu, topics.input, "shifted", shifted)
        harness.wait_until(lambda: harness.handled(daemon.metrics()) >= 2 * WINDOW,
                           "the shifted clips", daemon, timeout_s=300)
        moved = psi(daemon)
        assert moved is not None and moved > ALERT_PSI, (flat, moved)
        print(f"PSI over {WINDOW} scores: {flat:.3f} like the reference, {moved:.3f} shifted")
        stored = harness.query(f"sqlite:///{tmp_path / 'vigil.db'}",
                               "SELECT count(*) FROM audio_verdicts")
        assert stored == [(2 * WINDOW,)]
    finally:
        daemon.kill()
    shutil.rmtree(media)
