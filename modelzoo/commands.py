"""The model side of the ``vigil`` command: ``build``, ``train``, ``audio``, ``vrt`` and
``minview``, their flags declared here, next to the code they run. Torch-free: the parser
is built under the orchestrator's own install too, and each command imports what it needs
only when it runs (``entry``)."""

from __future__ import annotations

import argparse

DEFAULT_MANIFEST = "archives/manifest.yaml"
DEFAULT_EXPORT_DIR = "archives"


def register(commands: argparse._SubParsersAction) -> None:
    """Add the model commands to ``vigil``'s subcommands."""
    for add in (_add_build, _add_train, _add_audio, _add_vrt, _add_minview):
        add(commands)


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
    audio.add_argument("--budget-s", type=float, default=None,
                       help="training time, evaluations included (default: the recipe's, "
                       "five minutes); early stopping may end it sooner")
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
    audio.add_argument("--screen-budget-s", type=float, default=0.0, metavar="SECONDS",
                       help="also train a cascade's screen for this long: a smaller spotter "
                       "in front of the model, whose threshold keeps 99%% of the model's "
                       "positives on the held-out and shifted clips; the archive then "
                       "carries it (default 0: no screen)")
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
    evaluate = steps.add_parser(
        "evaluate", help="judge a trained model (and its screen) on labelled clips",
        description="Score labelled clips (a `vigil audio generate` folder, or your own "
        "manifest.jsonl) with a model `vigil train audio` trained, at its calibrated "
        "threshold: recall and FPR with 95% intervals, ROC AUC, recall at 1% FPR; with a "
        "screen, the share it answers alone and the model's positives it keeps.")
    evaluate.add_argument("--model", required=True, metavar="TRAINED_DIR",
                          help="the --out folder of `vigil train audio`")
    evaluate.add_argument("--clips", required=True, metavar="DIR",
                          help="labelled clips (a folder with manifest.jsonl)")
    evaluate.add_argument("--out", metavar="FILE", help="also write the figures as JSON")
    evaluate.set_defaults(entry="modelzoo.cli:evaluate_audio")


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
