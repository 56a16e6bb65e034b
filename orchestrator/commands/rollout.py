"""``vigil rollout``: see and steer the rollouts in the database the daemons read.

The daemons re-read ``model_rollouts`` every ``rollout.poll_s``, so a change made here is
served within that time. Each change is written over the revision it was decided on: when a
daemon moved the rollout first, the command says so and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

from orchestrator.catalogue import Catalogue, ModelEntry
from orchestrator.config import AppConfig, load_config
from orchestrator.db import open_store
from orchestrator.errors import ConfigError, RolloutConflict, VigilError
from orchestrator.rollouts import Mode, Rollout, RolloutTable, State

HEADERS = ("MODEL", "LANGUAGE", "LIVE", "CANDIDATE", "STEP", "STATE", "REV", "UPDATED",
           "REASON")


def table(rollouts: Sequence[Rollout]) -> str:
    """``rollouts`` as an aligned text table, one row each."""
    rows = [HEADERS] + [
        (r.model, r.language, r.live_version, r.candidate_version, _step(r), r.state,
         str(r.revision), r.updated_at, r.reason) for r in rollouts]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADERS) - 1)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in zip(row, widths)),
                                row[-1]]).rstrip() for row in rows)


def _step(rollout: Rollout) -> str:
    if rollout.state == State.ROLLED_BACK:
        return "-"
    if rollout.mode == Mode.CANARY:
        return f"canary {rollout.fraction:.0%}"
    return rollout.mode


def _language(model: ModelEntry, language: str | None) -> str:
    if language:
        if language not in model.languages:
            raise ConfigError(f"{model.name} serves {list(model.languages)}, not {language!r}")
        return language
    if len(model.languages) != 1:
        raise ConfigError(f"{model.name} serves {list(model.languages)}: name one with "
                          "--language")
    return model.languages[0]


async def _run(args: argparse.Namespace, config: AppConfig) -> str:
    async with open_store(config.database_url) as store:
        rollouts = RolloutTable(store)
        if args.action == "status":
            if args.history:
                return table(await rollouts.history(args.model, args.history))
            return table([r for r in await rollouts.all()
                          if args.model in (None, r.model)])
        catalogue = Catalogue.load(config.torchserve.catalogue)
        live = catalogue.live(args.model)
        language = _language(live, args.language)
        current = await rollouts.get(args.model, language)
        if args.action == "start":
            if current is not None and current.movable:
                raise RolloutConflict(f"{args.model} {language}: a rollout of "
                                      f"{current.candidate_version} is {current.state}; roll "
                                      "it back first")
            catalogue.version(args.model, args.candidate)
            new = Rollout.begin(args.model, language,
                                current.serving_version if current else live.version,
                                args.candidate, args.reason or "started by hand", after=current)
        elif current is None:
            raise RolloutConflict(f"{args.model} {language}: no rollout")
        elif args.action == "promote":
            new = current.promoted(config.rollout.canary_steps, args.reason or "promoted by hand")
        else:
            new = current.rolled_back(args.reason or "rolled back by hand")
        if not await rollouts.write(new, current):
            raise RolloutConflict(f"{args.model} {language}: changed by a daemon meanwhile; "
                                  "see `vigil rollout status` and try again")
        return table([new])


def main(args: argparse.Namespace) -> int:
    """Run one ``vigil rollout`` action and print the rollouts it shows or changed."""
    try:
        config = load_config(args.config, pipeline="audio")
        print(asyncio.run(_run(args, config)))
    except VigilError as exc:
        raise SystemExit(f"vigil rollout {args.action}: {exc}") from exc
    return 0
