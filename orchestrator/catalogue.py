"""The model catalogue: what `vigil build` built, read by the daemons at start-up.

The manifest (``archives/manifest.yaml``) is the one source of truth for each model; the
build writes ``catalogue.json`` beside the archives with what it produced: name, version,
family, languages, labels, what a request may carry, input and output sizes, the
extractors a fusion head reads, engine, precision and threshold. The daemons take routing,
names, labels and sizes from here, so none of them restates a model fact. ``live`` names the
version each model serves verdicts with until a rollout promotes another
(:mod:`orchestrator.rollouts.table`); ``candidates``, optional, the version to roll out next.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.config import AppConfig, RoutingConfig
from orchestrator.errors import ConfigError, UnknownLanguage, UnknownVersion

FORMAT = 1
ANY_LANGUAGE = "*"


@dataclass(frozen=True)
class ModelEntry:
    """One built archive version."""

    name: str
    version: str
    family: str
    file: str
    languages: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    accepts: tuple[str, ...] = ()  # what a request may carry: audio, image, video, text, ...
    inputs: Mapping[str, int] = field(default_factory=dict)
    outputs: Mapping[str, int] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)  # fusion: modality -> extractor
    engine: str = "torchscript"
    precision: str = "fp32"
    threshold: float | None = None
    # Scores at build or calibration time: {"edges", "fractions", "count", "source"}.
    score_reference: Mapping[str, Any] | None = None
    # What the archive bounds a request by: {"decode_s", "batch_size", "response_timeout_s"}
    # (absent from catalogues written before the limits were recorded).
    limits: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ModelEntry:
        known = {name: entry[name] for name in cls.__dataclass_fields__ if name in entry}
        for name in ("languages", "labels", "accepts"):
            known[name] = tuple(known.get(name, ()))
        return cls(**known)

    @property
    def path(self) -> str:
        """The versioned inference path, ``/predictions/<name>/<version>``."""
        return f"/predictions/{self.name}/{self.version}"

    def metric_language(self, language: str) -> str:
        """``language`` where this model serves it by name, else ``*``: the value of a
        metric's language label, which a clip's own language string would let anyone mint."""
        return language if language in self.languages else ANY_LANGUAGE


def check_request_timeout(models: Iterable[ModelEntry], config: AppConfig) -> None:
    """Raise :class:`ConfigError` unless the daemon's request timeout lies between what each
    model's handler may spend on a worker's batch of slow inputs, each answered with its
    413 at the archive's decode limit, and TorchServe's ``responseTimeout``, past which the
    frontend kills the worker: then an input that is slow ends as its handler's 413, never
    as a timeout or a dead worker (docs/OPERATIONS.md, "Limits")."""
    timeout_s = config.torchserve.timeout_s
    # One request per clip, or (batch_requests) up to a batch's clips in one request.
    bodies = config.batch.max_size if config.torchserve.batch_requests else 1
    for model in models:
        if not model.limits:
            continue
        limits = model.limits
        slowest = limits["batch_size"] * bodies * limits["decode_s"]
        if not slowest < timeout_s < limits["response_timeout_s"]:
            raise ConfigError(
                f"torchserve.timeout_s ({timeout_s:g} s) must lie between {slowest:g} s, what "
                f"{model.name} {model.version} may spend on a batch of slow inputs "
                f"({limits['batch_size']:g} requests x {bodies} per request x its "
                f"{limits['decode_s']:g} s decode limit), and its TorchServe responseTimeout "
                f"({limits['response_timeout_s']:g} s)")


class Catalogue:
    """The built archives, and which version of each is live."""

    def __init__(self, entries: Iterable[ModelEntry], live: Mapping[str, str],
                 candidates: Mapping[str, str] | None = None) -> None:
        self._entries = {(e.name, e.version): e for e in entries}
        self._live = dict(live)
        self.candidates = dict(candidates or {})
        for role, versions in (("live", self._live), ("candidate", self.candidates)):
            for name, version in versions.items():
                if (name, version) not in self._entries:
                    raise ConfigError(f"catalogue: {role} {name} {version} was never built")

    @classmethod
    def load(cls, path: Path | str) -> Catalogue:
        """Read ``catalogue.json``; raise :class:`ConfigError` when it is missing or wrong."""
        try:
            document = json.loads(Path(path).read_text())
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {FORMAT}")
            entries = [ModelEntry.from_json(entry) for entry in document["models"]]
            return cls(entries, document["live"], document.get("candidates"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cannot read the model catalogue {path}: {exc}; build the "
                              "archives first (`vigil build`)") from exc

    def live(self, name: str) -> ModelEntry:
        """The live version of model ``name``; raises :class:`UnknownVersion` if there is
        none."""
        if name not in self._live:
            raise UnknownVersion(f"no model {name!r} in the catalogue; built: {sorted(self._live)}")
        return self._entries[(name, self._live[name])]

    def version(self, name: str, version: str) -> ModelEntry:
        """A built version of ``name``; raises :class:`UnknownVersion` if it was never
        built."""
        try:
            return self._entries[(name, version)]
        except KeyError:
            raise UnknownVersion(f"{name} {version} is not in the catalogue") from None

    def family(self, family: str) -> list[ModelEntry]:
        """The live model of every archive of ``family``, by name."""
        return [self.live(name) for name in sorted(self._live)
                if self._entries[(name, self._live[name])].family == family]

    def only(self, family: str, name: str = "") -> ModelEntry:
        """The live model called ``name``, or the family's single live model when empty."""
        if name:
            return self.live(name)
        found = self.family(family)
        if len(found) != 1:
            raise ConfigError(f"expected one {family} archive in the catalogue, found "
                              f"{[e.name for e in found]}: name the one to use")
        return found[0]


class Router:
    """A clip's language to the model that scores it."""

    def __init__(self, by_language: Mapping[str, ModelEntry],
                 fallback: ModelEntry | None) -> None:
        self.by_language = dict(by_language)
        self.fallback = fallback

    @classmethod
    def for_audio(cls, catalogue: Catalogue, routing: RoutingConfig,
                  family: str = "audio_nsfw") -> Router:
        """Route to every live archive of ``family`` (or only ``routing.languages``); the
        archive serving ``*`` takes other languages when ``routing.fallback`` is on.
        Raises :class:`ConfigError` for a configured language no archive serves."""
        by_language: dict[str, ModelEntry] = {}
        fallback = None
        for entry in catalogue.family(family):
            for language in entry.languages:
                if language == ANY_LANGUAGE:
                    fallback = entry
                else:
                    by_language[language] = entry
        if routing.languages:
            missing = set(routing.languages) - set(by_language)
            if missing:
                raise ConfigError(f"routing.languages {sorted(missing)}: no {family} archive "
                                  f"serves them; the catalogue has {sorted(by_language)}")
            by_language = {lang: by_language[lang] for lang in routing.languages}
        return cls(by_language, fallback if routing.fallback else None)

    @property
    def models(self) -> list[ModelEntry]:
        """Every model a clip can be routed to."""
        routed = {(e.name, e.version): e for e in self.by_language.values()}
        if self.fallback is not None:
            routed[(self.fallback.name, self.fallback.version)] = self.fallback
        return list(routed.values())

    def route(self, language: str) -> ModelEntry:
        """The model for ``language``, the fallback, or :class:`UnknownLanguage`."""
        entry = self.by_language.get(language, self.fallback)
        if entry is None:
            raise UnknownLanguage(f"no model for language {language[:50]!r} and no fallback")
        return entry
