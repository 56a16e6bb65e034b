"""Score drift on real TorchServe, broker and daemon: ``vigil_score_psi`` stays under the alert
line while clips come from the distribution the version's reference was measured on, and
crosses it once they come from another.

A random-weight tiny model scores every input within a hair of 0.5, so this test's model is
the tiny one with its classifier's logits scaled up and centred: its scores spread over
[0, 1] and depend on what the audio sounds like."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from tqdm import tqdm

from modelzoo import audio_classifier, catalogue, families
from modelzoo.build import BuildOptions, package_model, seed_for
from modelzoo.manifest import ArchiveSpec
from scripts import clips, harness
from scripts.services.tansu import Tansu
from scripts.services.torchserve import TorchServe

pytestmark = pytest.mark.integration
MODEL, LANGUAGE = "audio_nsfw_te", "te"
LOGIT_SCALE = 100.0
WINDOW = 200  # drift.window and drift.min_scores: PSI over the last 200 scores
REFERENCE_CLIPS = 400
ALERT_PSI = 0.25  # VigilScoreDrift's line


BATCH = 16


def generated(count: int, seed: int) -> Iterator[torch.Tensor]:
    """Batches of clips like the build's calibration inputs (tones, noise and silences)."""
    for first in range(0, count, BATCH):
        yield audio_classifier.generated_clips(min(BATCH, count - first),
                                               torch.Generator().manual_seed(seed + first))


def low_hums(count: int) -> Iterator[torch.Tensor]:
    """Batches of another kind of audio altogether: steady low sines."""
    t = torch.arange(audio_classifier.CLIP_SAMPLES) / audio_classifier.SAMPLE_RATE_HZ
    for first in range(0, count, BATCH):
        yield torch.stack([torch.sin(2 * torch.pi * (60 + 0.7 * i) * t)
                           for i in range(first, min(first + BATCH, count))])


def sensitive_model(spec: ArchiveSpec, store: Path) -> torch.nn.Module:
    model = families.load(spec, "tiny", seed_for(spec.name), store).eval()
    head = model.encoder.classifier
    with torch.no_grad():
        head.weight *= LOGIT_SCALE
        head.bias *= LOGIT_SCALE
        logits = model.logits(next(generated(BATCH, seed=0)))
        margin = logits[:, model.positive_index] - logits[:, 1 - model.positive_index]
        head.bias[model.positive_index] -= margin.median()
    return model


@pytest.fixture(scope="module")
def drift_server(tmp_path_factory: pytest.TempPathFactory, model_store: Path,
                 manifest: list[ArchiveSpec]) -> Iterator[TorchServe]:
    """TorchServe serving the sensitive model, its reference measured on 400 generated
    clips."""
    store = tmp_path_factory.mktemp("drift_store")
    spec = dataclasses.replace(next(s for s in manifest if s.name == MODEL),
                               engine="torchscript", precision="fp32")
    model = sensitive_model(spec, store)
    with torch.no_grad():
        scores = torch.cat([model(batch) for batch in generated(REFERENCE_CLIPS, seed=1000)
                            ]).tolist()
    package_model(spec, model, BuildOptions(export_dir=store, size="tiny"), tqdm(disable=True),
                  reference=catalogue.score_reference(scores, "generated clips"))
    with TorchServe.running(workdir=tmp_path_factory.mktemp("drift_ts"), model_store=store,
                            models=[MODEL]) as server:
        yield server


def write_clips(folder: Path, name: str, batches: Iterator[torch.Tensor]) -> list[str]:
    folder.mkdir()
    urls = []
    audio = (samples for batch in batches for samples in batch.numpy())
    for index, samples in enumerate(audio):
        path = folder / f"{name}-{index}.wav"
        path.write_bytes(clips.encode(samples[:, np.newaxis], audio_classifier.SAMPLE_RATE_HZ,
                                      "wav"))
        urls.append(path.as_uri())
    return urls


def stream(tansu: Tansu, topic: str, name: str, urls: list[str]) -> None:
    messages = [{"clip_id": f"{name}-{i}", "stream_id": f"s{i % 9}", "language": LANGUAGE,
                 "audio_url": url} for i, url in enumerate(urls)]
    harness.produce(tansu.bootstrap, topic,
                    [(m["clip_id"].encode(), json.dumps(m).encode()) for m in messages])


def psi(daemon: harness.Daemon) -> float | None:
    return harness.sample_value(daemon.metrics(), "vigil_score_psi", model=MODEL,
                                version="1.0", language=LANGUAGE)


def test_psi_stays_flat_on_the_reference_distribution_and_crosses_the_line_when_it_moves(
        tmp_path, tansu, drift_server, topics):
    media = tmp_path / "media"
    media.mkdir()
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
        stream(tansu, topics.input, "same", write_clips(media / "same", "same",
                                                         generated(WINDOW, seed=2000)))
        harness.wait_until(lambda: harness.handled(daemon.metrics()) >= WINDOW,
                           "the clips like the reference", daemon, timeout_s=300)
        flat = psi(daemon)
        assert flat is not None and flat < ALERT_PSI, flat

        stream(tansu, topics.input, "hum", write_clips(media / "hum", "hum", low_hums(WINDOW)))
        harness.wait_until(lambda: harness.handled(daemon.metrics()) >= 2 * WINDOW,
                           "the low hums", daemon, timeout_s=300)
        moved = psi(daemon)
        assert moved is not None and moved > max(ALERT_PSI, 4 * flat), (flat, moved)
        print(f"PSI over {WINDOW} scores: {flat:.3f} like the reference, {moved:.3f} moved")
        stored = harness.query(f"sqlite:///{tmp_path / 'vigil.db'}",
                               "SELECT count(*) FROM audio_verdicts")
        assert stored == [(2 * WINDOW,)]
    finally:
        daemon.kill()
    shutil.rmtree(media)
