"""Session fixtures for the model-side tests: the manifest, every archive built with tiny
random-weight models, and a real TorchServe serving them.

Registered for every package by the root conftest; the models are imported when a fixture
is first used, so the orchestrator's tests run without torch installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from modelzoo.manifest import ArchiveSpec
    from scripts.services.torchserve import TorchServe


@pytest.fixture(scope="session")
def manifest() -> list[ArchiveSpec]:
    from modelzoo.manifest import load_manifest
    from scripts.services.process import REPO_ROOT

    return load_manifest(REPO_ROOT / "archives" / "manifest.yaml")


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory, manifest: list[ArchiveSpec]) -> Path:
    """Every manifest archive built with tiny random-weight models, once per session."""
    from modelzoo.build import BuildOptions, build_all

    store = tmp_path_factory.mktemp("model_store")
    build_all(manifest, BuildOptions(export_dir=store, size="tiny"))
    return store


@pytest.fixture(scope="session")
def torchserve(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path, manifest: list[ArchiveSpec]
) -> Iterator[TorchServe]:
    """A real TorchServe serving the tiny archives with Vigil's config.properties."""
    from scripts.services.torchserve import TorchServe

    with TorchServe.running(workdir=tmp_path_factory.mktemp("torchserve"),
                            model_store=model_store,
                            models=[spec.name for spec in manifest]) as server:
        yield server
