"""The read side of the rollouts: the rows this daemon last read, which it sits out, and the
versions each clip meets. No I/O: :class:`~orchestrator.rollouts.control.RolloutControl`
fills it from the table; the hot path only reads it.

A clip routed to a model with a running rollout gets a :class:`Plan`: its stream is on the
candidate (canary), or the live version serves it and the candidate may also score it in
shadow. A rollout this daemon cannot serve (its TorchServe or catalogue lacks the candidate:
an old pod in the middle of a deploy) is sat out: live serves every clip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.catalogue import Catalogue, ModelEntry
from orchestrator.errors import UnknownVersion
from orchestrator.messages import ClipMessage
from orchestrator.rollouts.table import Rollout

Key = tuple[str, str]  # model, routed language


@dataclass(frozen=True, slots=True)
class Plan:
    """Which versions a clip meets."""

    serve: ModelEntry  # the version whose answer is the clip's verdict
    # The serving version (the rollout's live version, or the candidate once promoted),
    # which gives the verdict should a canary candidate fail.
    fallback: ModelEntry
    shadow: ModelEntry | None = None  # a candidate that also scores it, recorded only
    rollout: Rollout | None = None  # the step it was planned under

    @property
    def on_candidate(self) -> bool:
        return self.serve is not self.fallback


class RolloutView:
    """The rollouts of the routed models as last read, and each clip's plan under them."""

    def __init__(self, catalogue: Catalogue, routed: Sequence[ModelEntry], *,
                 shadow_sample: float) -> None:
        self.catalogue = catalogue
        self.routed = {model.name: model for model in routed}
        self.shadow_sample = shadow_sample
        self._rollouts: dict[Key, Rollout] = {}
        self._sitting_out: set[Key] = set()

    def is_new(self, rollout: Rollout) -> bool:
        """Whether ``rollout`` is of a routed model and differs from what is held."""
        return rollout.model in self.routed and self._rollouts.get(rollout.key) != rollout

    def hold(self, rollout: Rollout, *, sit_out: bool = False) -> None:
        """Plan clips under ``rollout`` from now on (live only when ``sit_out``)."""
        self._rollouts[rollout.key] = rollout
        if sit_out:
            self._sitting_out.add(rollout.key)
        else:
            self._sitting_out.discard(rollout.key)

    def is_current(self, rollout: Rollout) -> bool:
        """Whether ``rollout`` is the running step held now: outcomes of clips planned under
        an earlier step must not judge this one."""
        return self._rollouts.get(rollout.key) is rollout and rollout.running

    def serving(self) -> list[ModelEntry]:
        """The versions that serve verdicts where a rollout promoted another version than
        the catalogue's live one."""
        return [self.entry(rollout.model, rollout.serving_version)
                for rollout in self._rollouts.values()
                if rollout.serving_version != self.routed[rollout.model].version]

    def plan(self, clip: ClipMessage) -> Plan:
        """The versions ``clip`` meets."""
        routed = clip.model
        key = (routed.name, routed.metric_language(clip.language))
        rollout = self._rollouts.get(key)
        if rollout is None:
            return Plan(routed, routed)
        serving = self.entry(routed.name, rollout.serving_version)
        if not rollout.running or key in self._sitting_out:
            return Plan(serving, serving)
        candidate = self.entry(routed.name, rollout.candidate_version)
        if rollout.on_candidate(clip.stream_id):
            return Plan(candidate, serving, rollout=rollout)
        sampled = rollout.shadows(clip.clip_id, self.shadow_sample)
        return Plan(serving, serving, candidate if sampled else None, rollout)

    def entry(self, model: str, version: str) -> ModelEntry:
        """``model`` at ``version``; the routed (live) entry for a version this daemon's
        catalogue lacks."""
        try:
            return self.catalogue.version(model, version)
        except UnknownVersion:
            return self.routed[model]
