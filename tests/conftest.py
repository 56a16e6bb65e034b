"""Fixtures shared by every test package: a temporary working directory for every test,
built archives and a real TorchServe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelzoo.build import BuildOptions, build_all
from modelzoo.manifest import ArchiveSpec, load_manifest
from scripts.services.process import REPO_ROOT
from scripts.services.torchserve import TorchServe


@pytest.fixture(autouse=True)
def _in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test from an empty directory: nothing a test (or a library it drives)
    writes to the working directory can land in the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="session")
def manifest() -> list[ArchiveSpec]:
    return load_manifest(REPO_ROOT / "archives" / "manifest.yaml")


@pytest.fixture(scope="session")
def model_store(tmp_path_factory: pytest.TempPathFactory, manifest: list[ArchiveSpec]) -> Path:
    """Every manifest archive built with tiny random-weight models, once per session."""
    store = tmp_path_factory.mktemp("model_store")
    build_all(manifest, BuildOptions(export_dir=store, size="tiny"))
    return store


@pytest.fixture(scope="session")
def torchserve(
    tmp_path_factory: pytest.TempPathFactory, model_store: Path, manifest: list[ArchiveSpec]
) -> Iterator[TorchServe]:
    """A real TorchServe serving the tiny archives with Vigil's config.properties."""
    with TorchServe.running(workdir=tmp_path_factory.mktemp("torchserve"),
                            model_store=model_store,
                            models=[spec.name for spec in manifest]) as server:
        yield server
