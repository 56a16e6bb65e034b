"""Fixtures shared by every test package: a temporary working directory for every test.

Nothing here imports torch or the models: the orchestrator's unit tests run under the
orchestrator's own install (`pip install .[test]`). Built archives and a real TorchServe are
in tests/archives.py, which imports the models only when a test asks for them."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.archives"]


@pytest.fixture(autouse=True)
def _in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test from an empty directory: nothing a test (or a library it drives)
    writes to the working directory can land in the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
