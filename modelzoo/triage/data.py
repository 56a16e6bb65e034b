"""Synthetic moderation histories with a known ground truth, for the demo and the tests.

What makes them realistic enough to calibrate on: NSFW posts are rare (a few percent), risk
is a property of the user (a few users post most of the NSFW), the user features are noisy
evidence of that risk, and the first-line score is correlated with the label but imperfect.
Every row is a post that reached 1,000 views; about 45% went on to reach 2,000.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ("post_id", "user_id", "score", "user_posts_6m", "user_discards_6m", "views",
           "decision")
DISCARD = "discard"
APPROVE = "approve"


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def generate_history(posts: int, *, seed: int = 0, posts_per_user: int = 15) -> pd.DataFrame:
    """``posts`` labelled rows with the calibration columns (see :data:`COLUMNS`)."""
    rng = np.random.default_rng(seed)
    users = max(10, posts // posts_per_user)
    risk = _sigmoid(rng.normal(-3.0, 1.4, users))  # skewed: most users are clean
    activity = np.maximum(1, np.exp(rng.normal(2.3, 0.9, users))).astype(int)
    discards = rng.binomial(activity, risk)

    owner = rng.choice(users, size=posts, p=activity / activity.sum())
    nsfw = rng.random(posts) < risk[owner]
    # The first-line model: informative, but it confuses borderline content both ways.
    score = _sigmoid(rng.normal(np.where(nsfw, 1.0, -2.2), 1.35))
    views = (1000 * np.exp(rng.exponential(0.85, posts))).astype(int)
    return pd.DataFrame({
        "post_id": [f"p{i}" for i in range(posts)],
        "user_id": [f"u{u}" for u in owner],
        "score": score.round(6),
        "user_posts_6m": activity[owner],
        "user_discards_6m": discards[owner],
        "views": views,
        "decision": np.where(nsfw, DISCARD, APPROVE),
    })


def read_history(path: str) -> pd.DataFrame:
    """A history table from Parquet or CSV, checked for the calibration columns."""
    frame = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing}; expected {list(COLUMNS)}")
    bad = ~frame["decision"].isin([DISCARD, APPROVE])
    if bad.any():
        raise ValueError(f"{path}: decision must be {DISCARD!r} or {APPROVE!r}; "
                         f"found {sorted(frame.loc[bad, 'decision'].astype(str).unique())[:5]}")
    return frame
