"""The archive manifest: which TorchServe archives to build, and how each is served."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any
from pathlib import Path

import yaml

from handlers import screen
from handlers.energy import EnergyGate
from modelzoo.engines import ENGINES, PRECISIONS, SUPPORTED

DEFAULT_MANIFEST = Path("archives/manifest.yaml")
LAYOUTS = ("manifest", "auto")
FAMILIES = ("audio_nsfw", "clip_visual", "xlmr_text", "vggish_audio", "vrt_fusion")


class ManifestError(ValueError):
    """The manifest is missing, unreadable or names something unknown."""


@dataclass(frozen=True, kw_only=True)
class ArchiveSpec:
    """One archive: its model source, handler settings and TorchServe model-config."""

    name: str
    family: str
    languages: tuple[str, ...] = ()  # audio_nsfw: the languages it scores; "*" for any other
    checkpoint: str | None = None
    architecture: str | None = None  # e.g. the open_clip model name for clip_visual
    version: str = "1.0"
    engine: str = "torchscript"
    # fp32, bf16, int8, or auto: the fastest engine x precision that passes the accuracy
    # check on the machine that builds (modelzoo/engine_choice.py).
    precision: str = "fp32"
    workers: int = 2
    batch_size: int = 8
    max_batch_delay_ms: int = 20
    # TorchServe's responseTimeout: past it the frontend kills the worker. It must exceed
    # what the handler may spend on a batch of slow inputs (batch_size x decode_limit_s),
    # and the daemons' request timeout lies between the two (docs/OPERATIONS.md, "Limits").
    response_timeout_s: int = 120
    # How long the handler may decode one input before answering it with a 413.
    decode_limit_s: float = 3.0
    threshold: float = 0.5
    # 0: the serving machine's cores divided by the workers of every archive served
    # together (handlers/runtime.py); set a number to override.
    intra_op_threads: int = 0
    # manifest: workers and intra_op_threads as written. auto: the build times every split
    # of its machine's cores into workers x threads, and rows per model call, with the chosen
    # engine and packages the fastest (modelzoo/layout.py), for an archive that has its
    # machine to itself.
    layout: str = "manifest"
    options: dict[str, Any] = field(default_factory=dict)  # family-specific handler settings
    # Build this version as the model's candidate, which the audio daemons roll out (shadow,
    # canary, live), instead of making it live at once.
    candidate: bool = False

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ManifestError(f"{self.name}: unknown family {self.family!r}; known: {FAMILIES}")
        object.__setattr__(self, "languages", tuple(self.languages))
        if self.family == "audio_nsfw" and not self.languages:
            raise ManifestError(f"{self.name}: an audio_nsfw archive needs its languages")
        if self.engine not in ENGINES:
            raise ManifestError(f"{self.name}: unknown engine {self.engine!r}; known: {ENGINES}")
        if self.precision not in (*PRECISIONS, "auto"):
            raise ManifestError(f"{self.name}: unknown precision {self.precision!r}; "
                                f"known: {(*PRECISIONS, 'auto')}")
        if self.precision != "auto" and self.precision not in SUPPORTED[self.engine]:
            raise ManifestError(f"{self.name}: {self.engine} has no {self.precision}; it "
                                f"offers {SUPPORTED[self.engine]}")
        self._check_energy_gate()
        self._check_screen()
        if self.layout not in LAYOUTS:
            raise ManifestError(f"{self.name}: layout must be one of {LAYOUTS}, not "
                                f"{self.layout!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ManifestError(f"{self.name}: threshold {self.threshold} is outside [0, 1]")
        if self.workers < 1 or self.batch_size < 1:
            raise ManifestError(f"{self.name}: workers and batch_size must be at least 1")
        if not 0 < self.slowest_batch_s < self.response_timeout_s:
            raise ManifestError(
                f"{self.name}: a batch of slow inputs may take batch_size x decode_limit_s = "
                f"{self.slowest_batch_s:g} s, which must be positive and under "
                f"response_timeout_s ({self.response_timeout_s} s), or TorchServe kills the "
                "worker instead of the handler answering 413")

    def _check_energy_gate(self) -> None:
        floor = self.options.get("energy_gate_dbfs")
        if floor is None:
            return
        if self.family != "audio_nsfw":
            raise ManifestError(f"{self.name}: energy_gate_dbfs is for audio_nsfw archives")
        try:
            EnergyGate(float(floor), sample_rate=16_000)
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{self.name}: {exc}") from exc

    def _check_screen(self) -> None:
        if "screen" not in self.options:
            return
        if self.family != "audio_nsfw":
            raise ManifestError(f"{self.name}: a screen is for audio_nsfw archives")
        try:
            screen.check_settings(self.options["screen"])
        except ValueError as exc:
            raise ManifestError(f"{self.name}: {exc}") from exc

    @property
    def slowest_batch_s(self) -> float:
        """The longest the handler may decode one batch: every input at its limit."""
        return self.batch_size * self.decode_limit_s

    @property
    def file_name(self) -> str:
        """The archive's file in the model store: one file per version."""
        return f"{self.name}-{self.version}.mar"

    def model_config(self) -> dict:
        """TorchServe's ``model-config.yaml``: frontend settings plus the handler section."""
        return {
            "minWorkers": self.workers,
            "maxWorkers": self.workers,
            "batchSize": self.batch_size,
            "maxBatchDelay": self.max_batch_delay_ms,
            "responseTimeout": self.response_timeout_s,
            "handler": {
                "model_name": self.name,
                "model_version": self.version,
                "languages": list(self.languages),
                "threshold": self.threshold,
                "engine": self.engine,
                "precision": self.precision,
                "intra_op_threads": self.intra_op_threads,
                "max_decode_s": self.decode_limit_s,
                **self.options,
            },
        }


def load_manifest(path: Path = DEFAULT_MANIFEST) -> list[ArchiveSpec]:
    """Read the manifest; raise :class:`ManifestError` on any problem in it."""
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"cannot read manifest {path}: {exc}") from exc
    defaults = document.get("defaults", {}) or {}
    known = {f.name for f in fields(ArchiveSpec)}
    specs = []
    for entry in document.get("archives", []) or []:
        merged = {**defaults, **entry}
        unknown = set(merged) - known
        if unknown:
            raise ManifestError(f"{entry.get('name')}: unknown keys {sorted(unknown)}")
        try:
            specs.append(ArchiveSpec(**merged))
        except TypeError as exc:
            raise ManifestError(f"{entry}: {exc}") from exc
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ManifestError(f"duplicate archive names in {path}")
    return specs
