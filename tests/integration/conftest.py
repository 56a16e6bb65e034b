"""Real services for the pipeline tests: a Tansu broker, PostgreSQL, and a TorchServe with
the audio archives the tests route to; and a Hindi classifier trained on generated speech."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

from modelzoo import catalogue, families
from modelzoo.build import BuildOptions, package_model, seed_for
from modelzoo.manifest import ArchiveSpec
from orchestrator.db import TABLES
from scripts.harness import Daemon, Topics
from scripts.services.postgres import Postgres
from scripts.services.process import REPO_ROOT, free_port
from scripts.services.tansu import Tansu
from scripts.services.torchserve import TorchServe

PIPELINE_MODELS = ("audio_nsfw_hi", "audio_nsfw_ta", "audio_nsfw_multi")
VERSIONS_MODEL = "audio_nsfw_hi"


@pytest.fixture(scope="session")
def tansu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tansu]:
    broker = Tansu(workdir=tmp_path_factory.mktemp("tansu"), port=free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres(port=free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pipeline_server(tmp_path_factory: pytest.TempPathFactory, model_store: Path
                    ) -> Iterator[TorchServe]:
    """TorchServe with just the models the pipeline tests route to (faster restarts)."""
    store = tmp_path_factory.mktemp("pipeline_store")
    for name in PIPELINE_MODELS:
        shutil.copy(catalogue.archive_path(model_store, name), store)
    shutil.copy(model_store / catalogue.FILE_NAME, store)
    with TorchServe.running(workdir=tmp_path_factory.mktemp("pipeline_ts"), model_store=store,
                            models=list(PIPELINE_MODELS)) as server:
        yield server


def build_version(spec: ArchiveSpec, store: Path, version: str, nsfw_bias: float) -> None:
    """``spec``'s tiny model at ``version`` as the catalogue's candidate; ``nsfw_bias`` is
    added to the positive class's logit (0: the live model's very weights)."""
    model = families.load(spec, "tiny", seed_for(spec.name), store).eval()
    with torch.no_grad():
        model.head.bias[model.positive_index] += nsfw_bias
    package_model(dataclasses.replace(spec, version=version), model,
                  BuildOptions(export_dir=store, size="tiny", candidate=True),
                  tqdm(disable=True))


@pytest.fixture(scope="session")
def versions(tmp_path_factory: pytest.TempPathFactory, model_store: Path,
             manifest: list[ArchiveSpec]) -> Iterator[TorchServe]:
    """TorchServe serving audio_nsfw_hi 1.0 (live), 1.1 (the same weights) and 1.2 (scores
    pushed up), all from one model store."""
    store = tmp_path_factory.mktemp("versions_store")
    shutil.copy(catalogue.archive_path(model_store, VERSIONS_MODEL), store)
    document = catalogue.read(model_store)
    document["models"] = [m for m in document["models"] if m["name"] == VERSIONS_MODEL]
    document["live"] = {VERSIONS_MODEL: "1.0"}
    (store / catalogue.FILE_NAME).write_text(json.dumps(document))
    live = catalogue.entry(store, VERSIONS_MODEL)
    spec = dataclasses.replace(next(s for s in manifest if s.name == VERSIONS_MODEL),
                               engine=live["engine"], precision=live["precision"])
    build_version(spec, store, "1.1", 0.0)
    build_version(spec, store, "1.2", 4.0)
    with TorchServe.running(workdir=tmp_path_factory.mktemp("versions_ts"), model_store=store,
                            models=[VERSIONS_MODEL]) as server:
        yield server


@pytest.fixture
def topics(tansu: Tansu, request: pytest.FixtureRequest) -> Topics:
    prefix = f"t{abs(hash(request.node.nodeid)) % 10**8}"
    created = Topics(input=f"{prefix}.audio", output=f"{prefix}.verdicts")
    created.create(tansu.bootstrap)
    return created


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'vigil.db'}"
        return
    server = request.getfixturevalue("postgres")
    import psycopg

    with psycopg.connect(server.url, autocommit=True) as connection:
        for table in TABLES:
            connection.execute(f"DROP TABLE IF EXISTS {table}")
    yield server.url


@pytest.fixture
def daemon(tmp_path: Path, tansu: Tansu, pipeline_server: TorchServe, topics: Topics,
           database_url: str) -> Iterator[Daemon]:
    runner = Daemon(workdir=tmp_path, env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{topics.input}-group",
        "VIGIL_KAFKA_INPUT_TOPIC": topics.input,
        "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
        **pipeline_server.client_env(),
        "VIGIL_ROUTING_LANGUAGES": "hi,ta",
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "https,file",
        "VIGIL_MEDIA_ALLOWED_HOSTS": "media.example.com",
        "VIGIL_MEDIA_ALLOWED_DIRS": str(tmp_path / "media"),
        "VIGIL_MEDIA_MAX_BYTES": "400000",
        "VIGIL_RUNTIME_DRAIN_TIMEOUT_S": "20",
        "DATABASE_URL": database_url,
    })
    (tmp_path / "media").mkdir()
    try:
        yield runner
    finally:
        runner.kill()


@dataclass
class TrainedClassifier:
    """What `vigil train audio` made of generated speech: its store, report and output."""

    work: Path
    store: Path
    stdout: str

    @property
    def metrics(self) -> dict:
        return json.loads((self.work / "model" / "metrics.json").read_text())


def vigil(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    completed = subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=cwd,
                               capture_output=True, text=True, timeout=900, check=False)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    return completed


@pytest.fixture(scope="session")
def trained_hi(tmp_path_factory: pytest.TempPathFactory) -> TrainedClassifier:
    """`vigil audio generate` (a training set of 6 s clips and a shifted set), then `vigil
    train audio --shifted` on a 90 s budget with a screen, built as audio_nsfw_hi 1.1."""
    work = tmp_path_factory.mktemp("train-audio")
    vigil("audio", "generate", "--language", "hi", "--clips", "900", "--seconds", "6",
          "--out", str(work / "speech"), cwd=work)
    vigil("audio", "generate", "--language", "hi", "--clips", "300", "--style", "shifted",
          "--seed", "1", "--out", str(work / "shifted"), cwd=work)
    # A recall target (rather than the default 1% FPR) leaves most positives above the
    # threshold, so fresh positives and negatives can each be checked.
    # With a cascade's screen (20 s of training), so the served archive is a cascade.
    result = vigil("train", "audio", "--data", str(work / "speech"), "--language", "hi",
                   "--shifted", str(work / "shifted"), "--target", "recall:0.9",
                   "--budget-s", "90", "--screen-budget-s", "20",
                   "--manifest", str(REPO_ROOT / "archives" / "manifest.yaml"),
                   "--export-dir", str(work / "store"), "--out", str(work / "model"), cwd=work)
    return TrainedClassifier(work, work / "store", result.stdout)
