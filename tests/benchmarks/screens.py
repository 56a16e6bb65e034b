"""A saved screen for the benchmark tests."""

import json
from pathlib import Path

from modelzoo import screen
from modelzoo.keyword_spotter import KeywordSpotter


def saved_screen(folder: Path, threshold: float, model_threshold: float | None = None) -> Path:
    """A random-weight screen saved as `vigil train audio --screen-budget-s` saves one;
    with ``model_threshold``, the (random) model it screens for beside it."""
    screen.new_screen(seed=2).save_pretrained(folder / "screen")
    metrics = {"screen": {"checkpoint": str(folder / "screen"), "threshold": threshold,
                          "sets": {}}}
    if model_threshold is not None:
        KeywordSpotter().save_pretrained(folder / "checkpoint")
        metrics["threshold"] = model_threshold
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder
