"""Daemon configuration: one frozen object per component, read and checked once at start-up.

Sources, later ones winning: the defaults below, a YAML file (sections named like the
fields of :class:`AppConfig`), then environment variables ``VIGIL_<SECTION>_<FIELD>``
(``DATABASE_URL`` too). Components receive their section; none reads the environment.
Every section checks its values in ``__post_init__`` and raises :class:`ConfigError`
naming the setting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import ConfigError

DEFAULT_SESSION_TIMEOUT_MS = 6000  # Tansu's group joins stall with librdkafka's 45 s default
DEFAULT_MAX_BATCH = 8
TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no")
MIN_TOKEN_CHARS = 16


def _require_positive(section: object, *names: str) -> None:
    for name in names:
        if not getattr(section, name) > 0:
            raise ConfigError(f"{_section_name(section)}.{name} must be positive, "
                              f"not {getattr(section, name)!r}")


def _require_port(section: object, name: str) -> None:
    if not 0 <= getattr(section, name) <= 65535:
        raise ConfigError(f"{_section_name(section)}.{name} must be a port (0..65535)")


def _section_name(section: object) -> str:
    return type(section).__name__.removesuffix("Config").lower()


@dataclass(frozen=True, kw_only=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "vigil-audio"
    input_topic: str = "livestream.audio"
    output_topic: str = "moderation.verdicts"
    session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    commit_interval_ms: int = 1000
    # How long the broker may hold a fetch open waiting for data (librdkafka: 500 ms). A
    # broker that answers only when the wait ends (Tansu does) adds up to this much to every
    # message that arrives during it: measured, 195 ms p50 and 494 ms p99 of a clip's time at
    # 50% load went there. 50 ms costs an idle consumer 20 small fetches a second.
    fetch_wait_max_ms: int = 50
    # Passed through verbatim to librdkafka (security.protocol, sasl.*, ...).
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_positive(self, "session_timeout_ms", "commit_interval_ms", "fetch_wait_max_ms")
        for name in ("bootstrap_servers", "group_id", "input_topic", "output_topic"):
            if not getattr(self, name):
                raise ConfigError(f"kafka.{name} must not be empty")

    @property
    def dlq_topic(self) -> str:
        return f"{self.input_topic}.dlq"

    def consumer_settings(self) -> dict[str, Any]:
        """librdkafka settings for the at-least-once pattern: offsets stored by hand."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": self.commit_interval_ms,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": max(500, self.session_timeout_ms // 3),
            "fetch.wait.max.ms": self.fetch_wait_max_ms,
            **self.extra,
        }

    def producer_settings(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "linger.ms": 5,
            "acks": "all",
            **{k: v for k, v in self.extra.items() if not k.startswith("group.")},
        }


@dataclass(frozen=True, kw_only=True)
class BatchConfig:
    max_size: int = DEFAULT_MAX_BATCH
    max_wait_s: float = 0.02

    def __post_init__(self) -> None:
        if not 1 <= self.max_size <= DEFAULT_MAX_BATCH:
            raise ConfigError(f"batch.max_size must be 1..{DEFAULT_MAX_BATCH}")
        _require_positive(self, "max_wait_s")


@dataclass(frozen=True, kw_only=True)
class RetryConfig:
    """Exponential backoff with jitter, within a time budget and at most ``max_attempts``
    tries (None: as many as the budget allows; see orchestrator/flow/retry.py)."""

    budget_s: float
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        _require_positive(self, "budget_s", "backoff_s", "backoff_max_s")
        if self.backoff_max_s < self.backoff_s:
            raise ConfigError(f"retry: backoff_max_s ({self.backoff_max_s}) must not be below "
                              f"backoff_s ({self.backoff_s})")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError(f"retry: max_attempts must be at least 1, not {self.max_attempts}")


@dataclass(frozen=True, kw_only=True)
class TorchServeConfig:
    url: str = "http://127.0.0.1:8080"
    key_file: str = "key_file.json"
    catalogue: str = "archives/catalogue.json"  # written by `vigil build`
    timeout_s: float = 30.0
    max_connections: int = 64
    # A time budget rather than a count: a model-server outage is waited out with intake
    # paused, not turned into dead letters.
    retry_budget_s: float = 300.0
    backoff_s: float = 0.2
    backoff_max_s: float = 5.0
    startup_timeout_s: float = 300.0  # how long start-up waits for TorchServe to answer
    # One multipart request per model and batch instead of one per item. Faster where
    # TorchServe's per-request cost rivals the model's (a trivial model: 820 vs 512 clips/s),
    # but TorchServe's batchSize counts requests, so it hands several multi-clip requests to
    # one worker: archives served this way want batch_size 1 (docs/BENCHMARKS.md).
    batch_requests: bool = False
    max_request_bytes: int = 16 * 1024 * 1024  # TorchServe's max_request_size

    def __post_init__(self) -> None:
        _require_positive(self, "timeout_s", "max_connections", "retry_budget_s", "backoff_s",
                          "backoff_max_s", "startup_timeout_s", "max_request_bytes")
        if self.backoff_max_s < self.backoff_s:
            raise ConfigError(f"torchserve.backoff_max_s ({self.backoff_max_s}) must not be "
                              f"below torchserve.backoff_s ({self.backoff_s})")

    @property
    def retry(self) -> RetryConfig:
        return RetryConfig(budget_s=self.retry_budget_s, backoff_s=self.backoff_s,
                           backoff_max_s=self.backoff_max_s)


@dataclass(frozen=True, kw_only=True)
class RoutingConfig:
    # Empty: every language an archive in the catalogue serves.
    languages: tuple[str, ...] = ()
    # Score other languages with the catalogue's multilingual archive (languages "*");
    # false: dead-letter them as unknown_language.
    fallback: bool = True


@dataclass(frozen=True, kw_only=True)
class MediaConfig:
    allowed_schemes: tuple[str, ...] = ("https",)
    allowed_hosts: tuple[str, ...] = ()  # "host" (any port) or "host:port"
    allowed_dirs: tuple[str, ...] = ()  # for file:// URLs
    # Networks a host may resolve into although they are loopback, private, link-local or
    # cloud metadata (e.g. "10.20.0.0/16" for an in-cluster media service).
    allowed_networks: tuple[str, ...] = ()
    max_bytes: int = 16 * 1024 * 1024
    timeout_s: float = 10.0
    retry_budget_s: float = 30.0

    def __post_init__(self) -> None:
        _require_positive(self, "max_bytes", "timeout_s", "retry_budget_s")

    @property
    def retry(self) -> RetryConfig:
        return RetryConfig(budget_s=self.retry_budget_s, backoff_s=0.2, backoff_max_s=2.0)


@dataclass(frozen=True, kw_only=True)
class VrtConfig:
    fusion_model: str = ""  # empty: the catalogue's vrt_fusion archive
    sla_s: float = 600.0  # a post scored later than this after created_at misses the SLA

    def __post_init__(self) -> None:
        _require_positive(self, "sla_s")


@dataclass(frozen=True, kw_only=True)
class TriageConfig:
    policy_path: str = "models/triage/policy.json"  # written by `vigil minview calibrate`
    method: str = "tree"  # "tree" (score + user history) or "score" (threshold only)
    nets: tuple[int, ...] = (1000, 2000)
    history_days: int = 182
    cache_ttl_s: float = 60.0
    cache_size: int = 100_000
    history_addr: str = "127.0.0.1"
    history_port: int = 8091  # GET /users/{id}/history; 0 turns the endpoint off
    # Bearer token callers of the history endpoint must present (a Kubernetes Secret).
    history_token: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if self.method not in ("tree", "score"):
            raise ConfigError("triage.method must be 'tree' or 'score'")
        if not self.nets or list(self.nets) != sorted(set(self.nets)) or self.nets[0] <= 0:
            raise ConfigError("triage.nets must be increasing positive view counts")
        _require_positive(self, "history_days", "cache_size")
        if self.cache_ttl_s < 0:
            raise ConfigError("triage.cache_ttl_s must not be negative")
        _require_port(self, "history_port")

    def require_history_token(self) -> None:
        """Raise :class:`ConfigError` when the history endpoint is on without a token (the
        min-view daemon checks this at start-up; other daemons never serve it)."""
        if self.history_port and len(self.history_token) < MIN_TOKEN_CHARS:
            raise ConfigError(f"triage.history_token (VIGIL_TRIAGE_HISTORY_TOKEN) must hold at "
                              f"least {MIN_TOKEN_CHARS} characters while the history endpoint "
                              "is on (triage.history_port; 0 turns it off)")


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    metrics_addr: str = "127.0.0.1"  # containers set 0.0.0.0 so Prometheus can scrape
    metrics_port: int = 9100
    max_in_flight: int = 256
    side_effect_concurrency: int = 64
    drain_timeout_s: float = 30.0
    # Writes (database rows, result events, dead letters) retry an unreachable store or
    # broker this long, intake paused meanwhile; then the result is dead-lettered, and a
    # dead letter that still cannot be written stops the daemon (it is redelivered).
    write_retry_budget_s: float = 600.0

    def __post_init__(self) -> None:
        _require_positive(self, "max_in_flight", "side_effect_concurrency", "drain_timeout_s",
                          "write_retry_budget_s")
        _require_port(self, "metrics_port")

    @property
    def write_retry(self) -> RetryConfig:
        return RetryConfig(budget_s=self.write_retry_budget_s, backoff_s=0.2, backoff_max_s=5.0)


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """Score drift: PSI of each model version's recent scores against its reference."""

    window: int = 1000  # the most recent scores per model, version and language
    # No PSI below this many scores: on a few dozen, PSI is noise that would page someone.
    min_scores: int = 200

    def __post_init__(self) -> None:
        _require_positive(self, "window", "min_scores")
        if self.min_scores > self.window:
            raise ConfigError(f"drift.min_scores ({self.min_scores}) must not exceed "
                              f"drift.window ({self.window})")


@dataclass(frozen=True, kw_only=True)
class QualityConfig:
    """Quality from moderators' decisions (``vigil run quality``)."""

    window: int = 2000  # the most recent decided clips per model, version and language
    # No precision, recall or proposal on fewer decided clips than this.
    min_decisions: int = 200
    propose_every: int = 500  # a threshold proposal per this many new decided clips
    recall_target: float = 0.95  # what the proposed threshold must keep of the positives
    # The audit sample: this share of the clips scored under their threshold goes to review
    # beside every flagged clip, drawn by a hash keyed with audit_key (a Secret; without
    # one, a key per process: a redelivered clip may be drawn again).
    audit_rate: float = 0.01
    audit_key: str = field(default="", repr=False)
    audit_days: int = 28  # the estimates cover the samples of this many days
    audit_every_s: float = 60.0  # how often the quality daemon re-estimates

    def __post_init__(self) -> None:
        _require_positive(self, "window", "min_decisions", "propose_every", "audit_days",
                          "audit_every_s")
        if not 0 < self.recall_target <= 1:
            raise ConfigError(f"quality.recall_target must be in (0, 1], not "
                              f"{self.recall_target!r}")
        if not 0 <= self.audit_rate <= 1:
            raise ConfigError(f"quality.audit_rate must be in [0, 1], not {self.audit_rate!r}")


@dataclass(frozen=True, kw_only=True)
class RolloutConfig:
    """Candidate versions in shadow and canary, and the gates that promote or roll back."""

    shadow_sample: float = 0.2  # share of live-served clips the candidate also scores
    shadow_max_in_flight: int = 16  # shadow requests at once; more are dropped, and counted
    shadow_timeout_s: float = 5.0  # a shadow or canary request's whole budget, no retries
    # Gates decide from intervals at this confidence, from min_samples pairs or requests on;
    # a step undecided after max_samples pairs is held as inconclusive for a person.
    confidence: float = 0.95
    min_samples: int = 100
    max_samples: int = 5000
    max_pairs_per_stream: int = 20  # one stream's evidence in a step is capped at this
    max_flip_rate: float = 0.02  # share of clips whose flag the candidate changes
    max_newly_flagged_rate: float = 0.02  # flagged by the candidate only: over-moderation
    max_newly_passed_rate: float = 0.01  # flagged by live only: misses
    max_psi: float = 0.1  # candidate's scores against live's, on the same clips...
    max_p_value: float = 0.01  # ...and only where a two-sample KS test calls it significant
    max_p99_ms: float = 2000.0  # the candidate's request latency...
    max_slow_rate: float = 0.01  # ...as the share of requests over it (p99: 1%)
    # Candidate p99 over live's on the same clips; 0 turns the gate off (a p99 cannot be
    # bounded on fewer than a few hundred pairs: steps that small cannot judge it).
    max_p99_ratio: float = 1.5
    max_error_rate: float = 0.01  # the candidate's failed requests (not refused input)
    canary_steps: tuple[float, ...] = (0.05, 0.25)  # shares of streams, then 100% (live)
    poll_s: float = 5.0  # how often a daemon re-reads model_rollouts (the CLI's changes)

    def __post_init__(self) -> None:
        _require_positive(self, "shadow_max_in_flight", "shadow_timeout_s", "min_samples",
                          "max_samples", "max_pairs_per_stream", "max_p99_ms", "poll_s")
        for name in ("shadow_sample", "max_flip_rate", "max_newly_flagged_rate",
                     "max_newly_passed_rate", "max_p_value", "max_slow_rate", "max_error_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"rollout.{name} must be in [0, 1], not "
                                  f"{getattr(self, name)!r}")
        if not 0.5 <= self.confidence < 1:
            raise ConfigError(f"rollout.confidence must be in [0.5, 1), not "
                              f"{self.confidence!r}")
        for name in ("max_psi", "max_p99_ratio"):
            if getattr(self, name) < 0:
                raise ConfigError(f"rollout.{name} must not be negative, not "
                                  f"{getattr(self, name)!r}")
        if self.min_samples > self.max_samples:
            raise ConfigError(f"rollout.min_samples ({self.min_samples}) must not exceed "
                              f"rollout.max_samples ({self.max_samples})")
        steps = list(self.canary_steps)
        if steps != sorted(set(steps)) or any(not 0 < step < 1 for step in steps):
            raise ConfigError("rollout.canary_steps must be increasing shares in (0, 1)")


@dataclass(frozen=True, kw_only=True)
class ReviewConfig:
    """The moderators' review page (``vigil review``)."""

    addr: str = "127.0.0.1"
    port: int = 8095
    # Local mode: moderator id → token (JSON, from a Secret). Behind an identity-aware proxy
    # set trusted_header instead (oauth2-proxy: X-Auth-Request-Email) and no tokens.
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)
    trusted_header: str = ""
    session_key: str = field(default="", repr=False)  # signs CSRF tokens (a Secret)
    claim_s: float = 300.0  # an opened item is a moderator's for this long
    undo_s: float = 5.0  # a decision waits this long, undoable, before it is sent
    post_threshold: float = 0.5  # new posts scored at or over this are queued
    post_sla_s: float = 3600.0  # a queued new post should be decided within this
    minview_sla_s: float = 4 * 3600.0
    clip_sla_s: float = 1800.0
    page_size: int = 50

    def __post_init__(self) -> None:
        _require_port(self, "port")
        _require_positive(self, "claim_s", "undo_s", "post_sla_s", "minview_sla_s",
                          "clip_sla_s", "page_size")

    def require_sign_in(self) -> None:
        """Raise :class:`ConfigError` unless exactly one way of signing in is set, with
        tokens and a session key long enough (checked by ``vigil review`` only)."""
        if bool(self.tokens) == bool(self.trusted_header):
            raise ConfigError("review: set either review.tokens (local mode) or "
                              "review.trusted_header (behind an identity-aware proxy)")
        short = [who for who, token in self.tokens.items() if len(str(token)) < MIN_TOKEN_CHARS]
        if short:
            raise ConfigError(f"review.tokens: the tokens of {sorted(short)} must hold at "
                              f"least {MIN_TOKEN_CHARS} characters")
        if len(self.session_key) < MIN_TOKEN_CHARS:
            raise ConfigError(f"review.session_key (VIGIL_REVIEW_SESSION_KEY) must hold at "
                              f"least {MIN_TOKEN_CHARS} characters")


@dataclass(frozen=True, kw_only=True)
class AppConfig:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    torchserve: TorchServeConfig = field(default_factory=TorchServeConfig)
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    media: MediaConfig = field(default_factory=MediaConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    vrt: VrtConfig = field(default_factory=VrtConfig)
    triage: TriageConfig = field(default_factory=TriageConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    review: ReviewConfig = field(default_factory=ReviewConfig)
    database_url: str = "sqlite:///vigil.db"


# What differs between the daemons before any file or variable is read.
PIPELINE_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "audio": {},
    # Video decodes within 5 s per input (archives/manifest.yaml): 8 of them take 40 s.
    "vrt": {"kafka": {"group_id": "vigil-vrt", "input_topic": "posts.created",
                      "output_topic": "posts.scored"},
            "torchserve": {"timeout_s": 60.0}},
    "minview": {"kafka": {"group_id": "vigil-minview", "input_topic": "posts.views",
                          "output_topic": "review.queue"}},
    # Writes tables and metrics only: the output topic is not used.
    "quality": {"kafka": {"group_id": "vigil-quality", "input_topic": "review.decisions"}},
    # Consumes nothing: it writes the moderators' decisions.
    "review": {"kafka": {"output_topic": "review.decisions"},
               "runtime": {"metrics_port": 9105}},
}

SECTIONS = {f.name: f for f in dataclasses.fields(AppConfig) if f.name != "database_url"}


def _section_type(name: str) -> type:
    return typing.get_type_hints(AppConfig)[name]


def _boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(f"{where}: {value!r} is not a boolean; use one of "
                      f"{', '.join(TRUE_WORDS + FALSE_WORDS)}")


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            return _boolean(value, where)
        if hint in (int, float, str):
            return hint(value)
        if origin is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            element = typing.get_args(hint)[0]
            return tuple(element(str(item).strip()) for item in items if str(item).strip())
        if origin is Mapping or hint is Mapping:
            return dict(json.loads(value) if isinstance(value, str) else value)
    except (TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{where}: cannot read {value!r} as {hint}") from exc
    return value


def options(pipeline: str = "audio") -> list[tuple[str, str, Any]]:
    """Every setting as ``(yaml key, environment variable, default)``, for ``--help``."""
    rows = []
    for name in SECTIONS:
        section_type = _section_type(name)
        overrides = PIPELINE_DEFAULTS[pipeline].get(name, {})
        for item in dataclasses.fields(section_type):
            default = item.default if item.default is not dataclasses.MISSING else {}
            default = overrides.get(item.name, default)
            rows.append((f"{name}.{item.name}", f"VIGIL_{name}_{item.name}".upper(), default))
    rows.append(("database_url", "DATABASE_URL", AppConfig().database_url))
    return rows


def load_config(path: Path | str | None = None, environ: Mapping[str, str] | None = None,
                pipeline: str = "audio") -> AppConfig:
    """Merge defaults (``pipeline``'s first), the YAML file at ``path`` and ``environ``;
    raise :class:`ConfigError` naming the first setting that is wrong."""
    environ = os.environ if environ is None else environ
    document: dict[str, Any] = {}
    if path is not None:
        try:
            document = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise ConfigError(f"config {path} must be a mapping of sections")
    unknown = set(document) - set(SECTIONS) - {"database_url"}
    if unknown:
        raise ConfigError(f"unknown config sections: {sorted(unknown)}")
    sections = {}
    for name in SECTIONS:
        section_type = _section_type(name)
        hints = typing.get_type_hints(section_type)
        values = {**PIPELINE_DEFAULTS[pipeline].get(name, {}), **(document.get(name) or {})}
        bad = set(values) - set(hints)
        if bad:
            raise ConfigError(f"unknown keys in {name}: {sorted(bad)}")
        for key in hints:
            env_name = f"VIGIL_{name}_{key}".upper()
            if env_name in environ:
                values[key] = environ[env_name]
        coerced = {k: _coerce(v, hints[k], f"{name}.{k}") for k, v in values.items()}
        sections[name] = section_type(**coerced)
    database_url = environ.get("DATABASE_URL", document.get("database_url", AppConfig().database_url))
    return AppConfig(**sections, database_url=database_url)
