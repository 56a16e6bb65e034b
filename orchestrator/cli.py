"""The ``vigil`` command. The daemons' and one-shot commands are declared here; the model
commands (``build``, ``train``, ``audio``, ``vrt``, ``minview``) by the models package
itself (``modelzoo/commands.py``, torch-free). Subcommands import their package only when
they run, so ``vigil run`` never loads torch and ``vigil build`` never loads the
orchestrator."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from orchestrator.escape import EscapingFormatter

# Packages that declare commands of their own, each with ``register(subcommands)``; named,
# not imported, so the orchestrator's import rules hold.
COMMAND_PACKAGES = ("modelzoo.commands",)
VIGIL_LOGGERS = ("orchestrator", "modelzoo", "handlers", "benchmarks")


def _add_embed(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "embed", help="embed a folder of posts through the extractor archives",
        description="Read POSTS/posts.jsonl (one JSON per line: post_id, label, and video, "
        "image and/or text; media paths relative to POSTS), embed each post through the "
        "running extractor archives exactly as `vigil run vrt` does, and write a table for "
        "`vigil train vrt`. TorchServe settings come from --config and VIGIL_TORCHSERVE_*; "
        "the archives from the catalogue.")
    parser.add_argument("--posts", required=True, help="folder with posts.jsonl and media")
    parser.add_argument("--out", default="data/embeddings.jsonl",
                        help="the table, as JSON Lines (one post per line)")
    parser.add_argument("--config", metavar="FILE", help="YAML config file")
    parser.add_argument("--concurrency", type=int, default=8, help="posts embedded at once")
    parser.set_defaults(entry="orchestrator.commands.embed:main")


def _add_health(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "health", help="probe TorchServe (with its key) or a daemon; exit 0 when healthy",
        description="Container liveness/readiness probe. `torchserve`: GET /ping with the "
        "inference key from the key file. `daemon`: GET the daemon's /metrics.")
    parser.add_argument("target", choices=("torchserve", "daemon"))
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="TorchServe inference URL")
    parser.add_argument("--key-file", default="key_file.json", help="TorchServe's key file")
    parser.add_argument("--port", type=int, default=9100, help="the daemon's metrics port")
    parser.set_defaults(entry="orchestrator.commands.health:main")


def _add_review(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "review", help="serve the moderators' review page",
        description="Serve the review page: queues of new posts by first-line score, "
        "min-view items and livestream clips (flagged, and the audit sample), an item page "
        "for deciding from the keyboard, decisions sent to review.decisions after an undo "
        "delay. Sign-in by per-moderator tokens (review.tokens) or an identity-aware proxy's "
        "header (review.trusted_header).", epilog=_options_epilog("review"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", help="YAML config file (sections as below)")
    parser.set_defaults(entry="orchestrator.review.server:main")


def _options_epilog(pipeline: str) -> str:
    from orchestrator.config import options

    rows = [f"  {key:<36} {env:<40} {default!r}" for key, env, default in options(pipeline)]
    return ("settings (YAML key in --config, environment variable, default):\n"
            + "\n".join(rows))


def _add_run(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run", help="run a pipeline daemon",
        description="Run an orchestrator daemon: Kafka in, batches to TorchServe, results out.",
    )
    pipelines = parser.add_subparsers(dest="pipeline", required=True, metavar="PIPELINE")
    descriptions = {
        "audio": ("livestream audio moderation",
                  "Consume livestream.audio, score each clip with its language's model, write "
                  "audio_verdicts and moderation.verdicts; bad input goes to livestream.audio.dlq."),
        "vrt": ("first-line multimodal scoring of new posts",
                "Consume posts.created, embed each post's frames, text and audio with the "
                "extractor archives, classify with the fusion archive, write post_scores and "
                "posts.scored; bad media goes to posts.created.dlq."),
        "minview": ("min-view triage into the manual review queue",
                    "Consume posts.views; when a post crosses a views net, decide with the "
                    "calibrated policy whether it goes to review_queue and review.queue. Also "
                    "serves GET /users/{id}/history."),
        "quality": ("model quality from moderators' decisions",
                    "Consume review.decisions, join each decided clip to its verdict, export "
                    "precision and recall at the threshold per model, version and language "
                    "(vigil_quality_*), and write a threshold for the recall target to "
                    "threshold_proposals (never applied); decisions go to review_decisions."),
    }
    for name, (summary, description) in descriptions.items():
        command = pipelines.add_parser(
            name, help=summary, description=description, epilog=_options_epilog(name),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_argument("--config", metavar="FILE",
                             help="YAML config file (sections as below)")
        command.set_defaults(entry="orchestrator.cli:run_pipeline")


def _add_rollout(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "rollout", help="see and steer candidate model versions (shadow, canary, live)",
        description="Rollouts of candidate versions per model and language, as kept in the "
        "database (model_rollouts and its history). Steps: shadow, canary at each share of "
        "rollout.canary_steps, live. The audio daemons judge the gates and move rollouts on "
        "their own; these commands are for people. The database and the catalogue come from "
        "--config, DATABASE_URL and VIGIL_TORCHSERVE_CATALOGUE.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    status = actions.add_parser("status", help="a table of the rollouts (or their history)",
                                description="Print every rollout's current row.")
    status.add_argument("--model", help="only this model")
    status.add_argument("--history", type=int, metavar="N",
                        help="the last N changes instead, newest first")
    helps = {"start": "start rolling out a candidate version, in shadow",
             "promote": "move a running rollout one step on",
             "rollback": "roll a running rollout back to live"}
    for action, summary in helps.items():
        command = actions.add_parser(action, help=summary, description=summary[0].upper()
                                     + summary[1:] + ".")
        command.add_argument("--model", required=True, help="the model, e.g. audio_nsfw_hi")
        command.add_argument("--language",
                             help="the routed language (default: the model's only one)")
        command.add_argument("--reason", help="recorded with the change")
        if action == "start":
            command.add_argument("--candidate", required=True, metavar="VERSION",
                                 help="a version in the catalogue")
    for command in actions.choices.values():
        command.add_argument("--config", metavar="FILE", help="YAML config file")
        command.set_defaults(entry="orchestrator.commands.rollout:main")


def run_pipeline(args: argparse.Namespace) -> int:
    """Load the config once and run the chosen daemon until SIGTERM/SIGINT.

    Exits non-zero with the reason when a start-up check fails or the daemon had to stop
    (a dead letter it could not write: the message is redelivered after the restart).
    """
    import asyncio

    from orchestrator.app import run_daemon
    from orchestrator.config import load_config
    from orchestrator.errors import VigilError
    from orchestrator.flow import FlowStopped

    try:
        asyncio.run(run_daemon(load_config(args.config, pipeline=args.pipeline),
                               args.pipeline))
    except (VigilError, FlowStopped) as exc:  # a start-up check, or a stop it had to make
        raise SystemExit(f"vigil run {args.pipeline}: {exc}") from exc
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The full argument parser; every command has ``--help``."""
    parser = argparse.ArgumentParser(
        prog="vigil", description="Vigil: content-moderation inference on TorchServe + Kafka."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_rollout(commands)
    _add_review(commands)
    _add_embed(commands)
    _add_health(commands)
    for package in COMMAND_PACKAGES:
        importlib.import_module(package).register(commands)
    return parser


def _configure_logging(verbose: bool) -> None:
    # Vigil's own loggers speak at INFO; libraries only when something is wrong (their INFO
    # lines, e.g. open_clip's model config dump, drown the daemon's), or everything with -v.
    handler = logging.StreamHandler()
    # A message's text (a URL, an error) may hold a line break that would forge a log line.
    handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        handlers=[handler])
    for name in VIGIL_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns its exit status."""
    args = make_parser().parse_args(argv)
    _configure_logging(args.verbose)
    module_name, function_name = args.entry.split(":")
    command = getattr(importlib.import_module(module_name), function_name)
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
