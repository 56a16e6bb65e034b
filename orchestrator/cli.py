"""The ``vigil`` command. Subcommands import their package only when they run, so
``vigil run`` never loads torch and ``vigil build`` never loads the orchestrator."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

DEFAULT_MANIFEST = "archives/manifest.yaml"
DEFAULT_EXPORT_DIR = "archives"


def _add_build(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "build",
        help="trace the manifest's models and package them as TorchServe archives",
        description="Trace each model in the manifest to TorchScript, check it against "
        "eager, and package it with torch-model-archiver into the model store.",
    )
    parser.add_argument("--manifest", default=DEFAULT_MANIFEST, help="archive manifest (YAML)")
    parser.add_argument(
        "--export-dir", default=DEFAULT_EXPORT_DIR, help="where the .mar files are written"
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--tiny", dest="size", action="store_const", const="tiny",
        help="random-weight tiny models instead of the checkpoints (dev, tests, demo)",
    )
    size.add_argument(
        "--size", choices=("tiny", "base"),
        help="random-weight models of this size instead of the checkpoints",
    )
    parser.add_argument("--only", nargs="+", metavar="NAME", help="build only these archives")
    parser.set_defaults(entry="modelzoo.cli:build")


def _options_epilog() -> str:
    from orchestrator.config import options

    rows = [f"  {key:<36} {env:<40} {default!r}" for key, env, default in options()]
    return ("settings (YAML key in --config, environment variable, default):\n"
            + "\n".join(rows))


def _add_run(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "run", help="run a pipeline daemon",
        description="Run an orchestrator daemon: Kafka in, batches to TorchServe, results out.",
    )
    pipelines = parser.add_subparsers(dest="pipeline", required=True, metavar="PIPELINE")
    audio = pipelines.add_parser(
        "audio", help="livestream audio moderation",
        description="Consume livestream.audio, score each clip with its language's model, "
        "write audio_verdicts and moderation.verdicts; bad input goes to livestream.audio.dlq.",
        epilog=_options_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    audio.add_argument("--config", metavar="FILE", help="YAML config file (sections as below)")
    audio.set_defaults(entry="orchestrator.cli:run_pipeline")


def run_pipeline(args: argparse.Namespace) -> int:
    """Load the config once and run the chosen daemon until SIGTERM/SIGINT."""
    import asyncio

    from orchestrator.app import run_audio
    from orchestrator.config import ConfigError, load_config

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise SystemExit(f"vigil run: {exc}") from exc
    asyncio.run(run_audio(config))
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The full argument parser; every command has ``--help``."""
    parser = argparse.ArgumentParser(
        prog="vigil", description="Vigil: content-moderation inference on TorchServe + Kafka."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_build(commands)
    _add_run(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns its exit status."""
    args = make_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # One line per HTTP request would drown the daemon's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    module_name, function_name = args.entry.split(":")
    command = getattr(importlib.import_module(module_name), function_name)
    return command(args)


if __name__ == "__main__":
    sys.exit(main())
