"""Package a serialised model into a TorchServe ``.mar`` with torch-model-archiver."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import yaml

from modelzoo.manifest import ArchiveSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
HANDLERS_DIR = REPO_ROOT / "handlers"
HANDLER_FILES = {
    "audio_nsfw": HANDLERS_DIR / "audio_handler.py",
    "clip_visual": HANDLERS_DIR / "clip_handler.py",
    "xlmr_text": HANDLERS_DIR / "text_handler.py",
    "vggish_audio": HANDLERS_DIR / "vggish_handler.py",
    "vrt_fusion": HANDLERS_DIR / "fusion_handler.py",
}


def tool_path(name: str) -> str:
    """A console script of this environment: beside the interpreter first, then on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else (shutil.which(name) or name)


class ArchiveError(RuntimeError):
    """torch-model-archiver failed; the message carries its output."""


def _stage_handler_package(staging: Path) -> Path:
    # The archiver flattens a directory's contents into the archive root, so the package
    # goes one level down to arrive as ``handlers/`` and keep its imports working.
    package_root = staging / "package"
    shutil.rmtree(package_root, ignore_errors=True)
    shutil.copytree(
        HANDLERS_DIR, package_root / "handlers", ignore=shutil.ignore_patterns("__pycache__")
    )
    return package_root


def package(
    spec: ArchiveSpec, serialized: Path, labels: list[str], export_dir: Path,
    handler_settings: dict | None = None, extra_files: Sequence[Path] = (),
) -> Path:
    """Write model-config.yaml and index_to_name.json beside ``serialized`` and archive them.

    Returns the path of the ``.mar`` (``<name>-<version>.mar``); raises
    :class:`ArchiveError` when archiving fails.
    """
    staging = serialized.parent
    config = spec.model_config()
    config["handler"].update(handler_settings or {})
    config_path = staging / "model-config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    labels_path = staging / "index_to_name.json"
    labels_path.write_text(json.dumps({str(i): label for i, label in enumerate(labels)}))
    package_root = _stage_handler_package(staging)
    export_dir.mkdir(parents=True, exist_ok=True)
    archived = staging / "archived"
    archived.mkdir(exist_ok=True)
    command = [
        tool_path("torch-model-archiver"),
        "--model-name", spec.name,
        "--version", spec.version,
        "--serialized-file", str(serialized),
        "--handler", str(HANDLER_FILES[spec.family]),
        "--extra-files", ",".join(str(p) for p in (labels_path, package_root, *extra_files)),
        "--config-file", str(config_path),
        "--export-path", str(archived),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise ArchiveError(f"torch-model-archiver failed for {spec.name}: {completed.stderr}")
    target = export_dir / spec.file_name
    shutil.move(archived / f"{spec.name}.mar", target)
    return target


def handler_settings(mar: Path) -> dict:
    """The handler section of a built archive's model-config.yaml (e.g. its embedding size)."""
    with zipfile.ZipFile(mar) as archive:
        return dict(yaml.safe_load(archive.read("model-config.yaml")).get("handler", {}))
