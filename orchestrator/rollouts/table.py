"""Rollouts of candidate model versions: their steps, and the table that keeps them.

One rollout per model and routed language (a language the model serves by name, or ``*``):

    shadow (the candidate scores a sample of live clips; recorded, never emitted)
      → canary 5% → canary 25% (those shares of streams get the candidate's verdicts)
      → live (promoted: the candidate's version serves every verdict)

and from any running step, rolled back (live alone serves; the candidate serves nothing), or
held as inconclusive (live alone serves until a person promotes or rolls it back: the gates
could not decide within ``rollout.max_samples``).

Which streams a canary step serves with the candidate, and which clips it scores in shadow,
is a keyed hash: each rollout draws a secret ``assignment_key`` when it begins, kept in its
row and in no event, so no producer can choose ids that land on a version.

The state is the ``model_rollouts`` row; every change is appended to
``model_rollout_history`` too. A change is written only over the revision it was decided on,
so two daemons, or a daemon and ``vigil rollout``, cannot both move one rollout: whoever
loses re-reads and carries on from what the table says.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.clock import iso_utc
from orchestrator.db import TABLES, Store, select, upsert
from orchestrator.errors import RolloutConflict
from orchestrator.monitoring import share_of


class Mode(StrEnum):
    """Whose verdicts a rollout's candidate gives: none (shadow), a share of streams'
    (canary), or every stream's (live)."""

    SHADOW = "shadow"
    CANARY = "canary"
    LIVE = "live"


class State(StrEnum):
    """Where a rollout stands: moving, done with the candidate serving, done without, or
    waiting for a person."""

    RUNNING = "running"
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled_back"
    INCONCLUSIVE = "inconclusive"


# vigil_rollout_state (the metric's name): the step a rollout is at; -1 once rolled back.
ROLLED_BACK_STEP = -1
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rollout:
    """A ``model_rollouts`` row."""

    model: str
    language: str
    live_version: str
    candidate_version: str
    mode: Mode
    fraction: float  # the share of streams that get the candidate's verdicts
    state: State
    reason: str
    updated_at: str
    revision: int
    # The secret of this rollout's assignment; "" for a row written before keys existed
    # (its assignment is a public hash: restart such a rollout).
    assignment_key: str = field(default="", repr=False)

    @classmethod
    def begin(cls, model: str, language: str, live_version: str, candidate_version: str,
              reason: str, *, after: Rollout | None = None) -> Rollout:
        """A new rollout in shadow, replacing ``after`` (the row's previous rollout)."""
        if live_version == candidate_version:
            raise RolloutConflict(f"{model}: the candidate {candidate_version} is the live "
                                  "version")
        return cls(model, language, live_version, candidate_version, Mode.SHADOW, 0.0,
                   State.RUNNING, reason, iso_utc(), after.revision + 1 if after else 1,
                   secrets.token_hex(16))

    @property
    def key(self) -> tuple[str, str]:
        return self.model, self.language

    @property
    def running(self) -> bool:
        return self.state == State.RUNNING

    @property
    def serving_version(self) -> str:
        """The version that serves the verdicts of streams outside the canary."""
        return self.candidate_version if self.state == State.PROMOTED else self.live_version

    def step(self, canary_steps: Sequence[float]) -> int:
        """0 shadow, 1.. each canary share, then live; -1 once rolled back."""
        if self.state == State.ROLLED_BACK:
            return ROLLED_BACK_STEP
        if self.mode == Mode.SHADOW:
            return 0
        if self.mode == Mode.LIVE:
            return len(canary_steps) + 1
        return 1 + sum(1 for share in canary_steps if share < self.fraction)

    @property
    def movable(self) -> bool:
        """Whether a promotion or rollback may be written: running, or waiting for one."""
        return self.state in (State.RUNNING, State.INCONCLUSIVE)

    def promoted(self, canary_steps: Sequence[float], reason: str) -> Rollout:
        """One step on: shadow to the first canary share, to the next, then live."""
        self._check_movable()
        larger = [share for share in canary_steps
                  if self.mode == Mode.SHADOW or share > self.fraction]
        if larger:
            return self._next(mode=Mode.CANARY, fraction=larger[0], state=State.RUNNING,
                              reason=reason)
        return self._next(mode=Mode.LIVE, fraction=1.0, state=State.PROMOTED, reason=reason)

    def rolled_back(self, reason: str) -> Rollout:
        """Back to live alone."""
        self._check_movable()
        return self._next(mode=Mode.LIVE, fraction=0.0, state=State.ROLLED_BACK, reason=reason)

    def inconclusive(self, reason: str) -> Rollout:
        """Held at this step with live alone serving, until a person moves it."""
        if not self.running:
            raise RolloutConflict(f"{self.model} {self.language}: the rollout is {self.state}, "
                                  "not running")
        return self._next(state=State.INCONCLUSIVE, reason=reason)

    def _check_movable(self) -> None:
        if not self.movable:
            raise RolloutConflict(f"{self.model} {self.language}: the rollout is {self.state}, "
                                  "not running")

    def _next(self, **changes: Any) -> Rollout:
        return dataclasses.replace(self, **changes, updated_at=iso_utc(),
                                   revision=self.revision + 1)

    def row(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def on_candidate(self, stream_id: str) -> bool:
        """Whether ``stream_id``'s verdicts come from the candidate at this step (once
        promoted, the candidate is the serving version instead)."""
        return self.running and self.mode == Mode.CANARY and \
            self._share(f"canary/{stream_id}") < self.fraction

    def shadows(self, clip_id: str, sample: float) -> bool:
        """Whether the candidate also scores ``clip_id`` in shadow (a ``sample`` share)."""
        return self._share(f"shadow/{clip_id}") < sample

    def _share(self, text: str) -> float:
        # A larger canary share only adds streams: on the candidate at 5%, on it at 25%.
        if self.assignment_key:
            return share_of(text, self.assignment_key)
        return share_of(f"{self.model}/{self.language}/{self.candidate_version}/{text}")


class RolloutTable:
    """``model_rollouts`` and ``model_rollout_history`` in a store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def all(self) -> list[Rollout]:
        return await self._select("model_rollouts", "", ())

    async def get(self, model: str, language: str) -> Rollout | None:
        found = await self._select("model_rollouts", "WHERE model = ? AND language = ?",
                                   (model, language))
        return found[0] if found else None

    async def history(self, model: str | None = None, limit: int = 50) -> list[Rollout]:
        """The latest changes, newest first (of ``model`` only, when given)."""
        where = "WHERE model = ? " if model else ""
        params: tuple = (model,) if model else ()
        return await self._select("model_rollout_history",
                                  f"{where}ORDER BY updated_at DESC, revision DESC LIMIT ?",
                                  (*params, limit))

    async def _select(self, table: str, clause: str, params: Sequence[Any]) -> list[Rollout]:
        rows = await select(self.store, table, clause, params)
        return [rollout for rollout in map(_decoded, rows) if rollout is not None]

    async def write(self, new: Rollout, over: Rollout | None) -> bool:
        """Write ``new`` if the row is still ``over`` (absent when ``over`` is None), and
        its history entry; False when someone else changed the row first."""
        row = new.row()
        if over is None:
            await upsert(self.store, "model_rollouts", [row], keep_existing=True)
        else:
            table = TABLES["model_rollouts"]
            changed = [c for c in table.columns if c not in table.key]
            await self.store.execute_many(
                f"UPDATE model_rollouts SET {', '.join(f'{c} = ?' for c in changed)} "
                "WHERE model = ? AND language = ? AND revision = ?",
                [(*(row[c] for c in changed), new.model, new.language, over.revision)])
        if await self.get(new.model, new.language) != new:
            return False
        await upsert(self.store, "model_rollout_history", [row], keep_existing=True)
        return True


def _decoded(row: dict[str, Any]) -> Rollout | None:
    """A row as a :class:`Rollout`, or None (logged) for one that cannot be read: a row
    written by hand must not stop every daemon, whatever model it names."""
    try:
        if not all(isinstance(row[column], str) for column in TEXT_FIELDS) or \
                not isinstance(row["assignment_key"], (str, type(None))):
            raise ValueError("a text column holds something else")
        return Rollout(**{**row, "mode": Mode(row["mode"]), "state": State(row["state"]),
                          "fraction": float(row["fraction"]), "revision": int(row["revision"]),
                          "assignment_key": row["assignment_key"] or ""})
    except (TypeError, ValueError) as exc:
        logger.warning("skipping a model_rollouts row that cannot be read (%s): %.300r",
                       exc, tuple(row.values()))
        return None


TEXT_FIELDS = tuple(f.name for f in dataclasses.fields(Rollout)
                    if f.type == "str" and f.name != "assignment_key")
