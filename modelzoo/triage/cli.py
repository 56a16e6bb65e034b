"""``vigil minview generate`` and ``vigil minview calibrate``."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelzoo.triage.calibrate import CalibrationOptions, calibrate, summary_markdown, write_outputs
from modelzoo.triage.data import generate_history, read_history


def generate(args: argparse.Namespace) -> int:
    """Write a synthetic labelled history (Parquet or CSV by the file's suffix)."""
    history = generate_history(args.posts, seed=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        history.to_parquet(out, index=False)
    else:
        history.to_csv(out, index=False)
    print(f"{out}: {len(history):,} posts, {int((history.decision == 'discard').sum()):,} NSFW")
    return 0


def run_calibration(args: argparse.Namespace) -> int:
    """Calibrate both methods on the history, write the policy and the report, print it."""
    try:
        history = read_history(args.history)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"vigil minview calibrate: {exc}") from exc
    options = CalibrationOptions(target_recall=args.target_recall,
                                 second_net_recall=args.second_net_recall,
                                 nets=tuple(sorted(args.nets)), test_size=args.test_size,
                                 seed=args.seed)
    policy, report = calibrate(history, options)
    for path in write_outputs(policy, report, Path(args.out)):
        print(f"wrote {path}")
    print(summary_markdown(report))
    return 0
