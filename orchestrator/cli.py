"""The ``vigil`` command. Subcommands import their package only when they run, so
``vigil run`` never loads torch and ``vigil build`` never loads the orchestrator."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from orchestrator.escape import EscapingFormatter

DEFAULT_MANIFEST = "archives/manifest.yaml"
DEFAULT_EXPORT_DIR = "archives"
VIGIL_LOGGERS = ("orchestrator", "modelzoo", "handlers", "benchmarks")


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
    parser.add_argument("--make-live", metavar="NAME=VERSION",
                        help="build nothing: record this built version as its model's live "
                        "version in the catalogue (a candidate a rollout promoted), so a "
                        "daemon on a fresh database serves it too")
    parser.set_defaults(entry="modelzoo.cli:build")


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "train", help="train a model from precomputed data",
        description="Train a head on precomputed inputs and export it into its archive.")
    models = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    vrt = models.add_parser(
        "vrt", help="the VRT fusion head, from an embeddings table",
        description="Train the 7-class fusion head on embeddings (JSON Lines, Parquet or CSV: "
        "post_id, label, visual, text, audio; an absent modality is null) with class weights and a "
        "validation split; write fusion.pt, a report with per-class precision/recall and a "
        "confusion matrix; export the traced head into the vrt_fusion archive. Embedding "
        "sizes are read from the built extractor archives.")
    source = vrt.add_mutually_exclusive_group(required=True)
    source.add_argument("--table",
                        help="embeddings table from `vigil embed` (.jsonl, .parquet, .csv)")
    source.add_argument("--generate", type=int, metavar="N",
                        help="train on N generated posts with a learnable signal instead")
    vrt.add_argument("--other-table", metavar="TABLE",
                     help="embeddings of posts of other templates (`vigil vrt generate "
                     "--template other`): per-class figures on them too, in the report")
    vrt.add_argument("--manifest", default=DEFAULT_MANIFEST, help="archive manifest (YAML)")
    vrt.add_argument("--export-dir", default=DEFAULT_EXPORT_DIR,
                     help="model store holding the extractor archives; the head goes here")
    vrt.add_argument("--out", default="models/vrt", help="folder for fusion.pt and the report")
    vrt.add_argument("--epochs", type=int, default=40, help="training epochs")
    vrt.add_argument("--seed", type=int, default=0, help="seed of the split and the init")
    vrt.set_defaults(entry="modelzoo.cli:train_vrt")
    audio = models.add_parser(
        "audio", help="a language's Wav2Vec2 NSFW-speech classifier, from labelled clips",
        description="Fine-tune the audio_nsfw classifier of --language on labelled clips "
        "(manifest.jsonl: path, label nsfw|safe; any format the handler decodes), from a "
        "local Hugging Face checkpoint (--init) or from scratch (--size); augmented windows "
        "around each clip's word; early stopping on a shifted validation set (--shifted, "
        "else the held-out split); calibrate the threshold for --target on the held-out "
        "and shifted clips; write report.md, roc_pr.png and metrics.json to --out; build "
        "the new version of audio_nsfw_<language> (engine, accuracy check, catalogue).")
    audio.add_argument("--data", required=True,
                       help="a folder holding manifest.jsonl, or the manifest itself")
    audio.add_argument("--language", required=True, help="the archive's language, e.g. hi")
    audio.add_argument("--shifted", metavar="DIR",
                       help="clips unlike the training set (`vigil audio generate --style "
                       "shifted`): half decides when to stop and takes part in calibrating "
                       "the threshold, half is only reported")
    audio.add_argument("--init", metavar="CHECKPOINT_DIR",
                       help="a local Hugging Face Wav2Vec2ForSequenceClassification folder "
                       "to fine-tune (default: a keyword spotter trained from scratch)")
    audio.add_argument("--size", default="small", choices=("small", "tiny"),
                       help="from scratch: small (the keyword spotter, the default) or tiny "
                       "(a tiny Wav2Vec2)")
    audio.add_argument("--target", default="fpr:0.01",
                       help="fpr:<share> (highest recall at that false-positive rate; the "
                       "default, 1%%) or recall:<share> (e.g. recall:0.95)")
    audio.add_argument("--budget-s", type=float, default=180.0,
                       help="training time, evaluations included; early stopping may end "
                       "it sooner")
    audio.add_argument("--learning-rate", type=float, default=None,
                       help="default 1e-3 from scratch, 3e-5 from a checkpoint")
    audio.add_argument("--version", help="the new archive version (default: the manifest's "
                       "version, one minor up)")
    audio.add_argument("--out", help="checkpoint and report folder (default models/audio/LANG)")
    audio.add_argument("--manifest", default=DEFAULT_MANIFEST, help="archive manifest (YAML)")
    audio.add_argument("--export-dir", default=DEFAULT_EXPORT_DIR, help="the model store")
    audio.add_argument("--seed", type=int, default=0,
                       help="seed of the held-out split and the init")
    audio.add_argument("--candidate", action="store_true",
                       help="record the new version as the model's candidate: the audio "
                       "daemons roll it out (shadow, canary, live) instead of serving it "
                       "at once (see `vigil rollout`)")
    audio.set_defaults(entry="modelzoo.cli:train_audio")


def _add_audio(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "audio", help="labelled speech for training the audio classifiers",
        description="Tools for the audio classifiers' training data.")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    generate = steps.add_parser(
        "generate", help="synthesise a labelled set of spoken 20 s clips with espeak-ng",
        description="Synthesise spoken clips offline with espeak-ng: positives say one of the "
        "policy words (harmless stand-ins by default: fruit names), negatives do not, some "
        "of them near misses; phrases of everyday words by one speaker under noise, music "
        "or other speakers, in a room or through a codec, as --style says. Writes "
        "OUT/clips/*.wav and OUT/manifest.jsonl for `vigil train audio`. A stand-in for "
        "real labelled audio: the training code is the same.")
    generate.add_argument("--language", required=True,
                          help="an espeak-ng voice: hi, ta, te, bn, mr, en, ...")
    generate.add_argument("--out", required=True, help="folder for clips/ and manifest.jsonl")
    generate.add_argument("--clips", type=int, default=200, help="how many clips")
    generate.add_argument("--seconds", type=float, default=20.0,
                          help="clip length (training sets may be shorter: less to "
                          "synthesise per word)")
    generate.add_argument("--style", choices=("training", "shifted"), default="training",
                          help="how the clips sound: shifted differs from training in every "
                          "way the generator varies (words, near misses, speakers, prosody, "
                          "where the word sits, phrases, backgrounds, noise level, rooms, "
                          "codecs)")
    generate.add_argument("--positive-share", type=float, default=0.5,
                          help="share of clips that say a policy word")
    generate.add_argument("--policy-words", help="comma-separated words positives say")
    generate.add_argument("--near-misses", help="comma-separated near misses (negatives)")
    generate.add_argument("--seed", type=int, default=0,
                          help="same seed, same clips (voices, offsets, noise)")
    generate.set_defaults(entry="modelzoo.cli:generate_speech")


def _add_vrt(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "vrt", help="generated posts for training and judging the VRT fusion head",
        description="Tools for the VRT fusion head's training data.")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    generate = steps.add_parser(
        "generate", help="write posts whose frames, caption and audio carry their category",
        description="Write posts (videos with a sound track, images, captions in English, "
        "Hindi, Tamil and Spanish) whose every modality carries the post's category, some "
        "with a modality that disagrees or is missing, as OUT/posts.jsonl and media for "
        "`vigil embed`. The training template is what the head learns from; the other "
        "template renders the same cues differently, to judge it on posts unlike those.")
    generate.add_argument("--out", required=True, help="folder for posts.jsonl and media")
    generate.add_argument("--posts", type=int, default=1000, help="how many posts")
    generate.add_argument("--template", choices=("training", "other"), default="training",
                          help="how the cues are rendered")
    generate.add_argument("--seed", type=int, default=0, help="same seed, same posts")
    generate.set_defaults(entry="modelzoo.cli:generate_posts")


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


def _add_minview(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "minview", help="min-view triage: synthetic histories and calibration",
        description="Build and calibrate the policy that `vigil run minview` applies.")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    generate = steps.add_parser(
        "generate", help="write a synthetic labelled history",
        description="Write a labelled history with a known ground truth (skewed classes, "
        "user-level risk, scores correlated with labels): .parquet or .csv.")
    generate.add_argument("--posts", type=int, default=100_000, help="rows to generate")
    generate.add_argument("--seed", type=int, default=0, help="seed of the generated history")
    generate.add_argument("--out", default="data/history.parquet", help="output file")
    generate.set_defaults(entry="modelzoo.triage.cli:generate")
    calibrate = steps.add_parser(
        "calibrate", help="choose thresholds at the target recall; write policy and report",
        description="Calibrate the score-only threshold and the tree model (score + user "
        "history) at the target recall on a held-out split. Input columns: post_id, user_id, "
        "score, user_posts_6m, user_discards_6m, views, decision (discard|approve).")
    calibrate.add_argument("--history", required=True, help="labelled history, Parquet or CSV")
    calibrate.add_argument("--target-recall", type=float, default=0.95,
                           help="recall of violating posts the policy must keep")
    calibrate.add_argument("--second-net-recall", type=float, default=0.8,
                           help="recall target for later nets, over the NSFW posts they see")
    calibrate.add_argument("--nets", type=int, nargs="+", default=[1000, 2000],
                           help="view counts at which triage decides")
    calibrate.add_argument("--test-size", type=float, default=0.5, help="held-out share")
    calibrate.add_argument("--seed", type=int, default=0, help="seed of the split")
    calibrate.add_argument("--out", default="models/triage",
                           help="folder for policy.json, report.md/json, pr_curve.png")
    calibrate.set_defaults(entry="modelzoo.triage.cli:run_calibration")


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
    _add_build(commands)
    _add_run(commands)
    _add_rollout(commands)
    _add_minview(commands)
    _add_train(commands)
    _add_audio(commands)
    _add_vrt(commands)
    _add_embed(commands)
    _add_health(commands)
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
