"""`vigil audio evaluate`'s figures: the model at its threshold and, with a screen, what the
cascade keeps of the model's positives."""

import json
from pathlib import Path

import numpy as np
import pytest

from modelzoo import evaluate_audio, screen
from modelzoo.audio_training import LabelledClip
from modelzoo.keyword_spotter import KeywordSpotter


def _trained(folder: Path, threshold: float, screen_threshold: float | None) -> Path:
    """A `vigil train audio --out` folder with random weights at the given thresholds."""
    KeywordSpotter().save_pretrained(folder / "checkpoint")
    metrics = {"threshold": threshold}
    if screen_threshold is not None:
        screen.new_screen(seed=1).save_pretrained(folder / "screen")
        metrics["screen"] = {"checkpoint": str(folder / "screen"), "threshold": screen_threshold}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def _clips(count: int) -> tuple[list[LabelledClip], list[np.ndarray]]:
    rng = np.random.default_rng(0)
    clips = [LabelledClip(Path(f"{i}.wav"), positive=i % 2 == 0) for i in range(count)]
    return clips, [0.1 * rng.standard_normal(16_000).astype(np.float32) for _ in clips]


def test_a_model_that_flags_everything_has_full_recall_and_full_fpr(tmp_path):
    clips, waves = _clips(6)
    result = evaluate_audio.evaluate(_trained(tmp_path, 0.0, None), clips, waves)
    assert (result["model"]["recall"], result["model"]["fpr"]) == (1.0, 1.0)
    assert result["model"]["positives"] == 3 and "screen" not in result
    assert "6 clips (3 nsfw) at threshold 0.0000" in evaluate_audio.summary(result)


def test_a_screen_that_answers_everything_alone_keeps_none_of_the_models_positives(tmp_path):
    clips, waves = _clips(6)
    result = evaluate_audio.evaluate(_trained(tmp_path, 0.0, 1.0), clips, waves)
    cascade = result["screen"]
    assert cascade["screened_out"] == 1.0 and cascade["model_positives"] == 6
    assert cascade["model_positives_kept"] == 0.0 and cascade["recall_cascade"] == 0.0
    assert "keeps 0.0%" in evaluate_audio.summary(result)


def test_a_folder_that_is_not_a_trained_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a `vigil train audio --out` folder"):
        evaluate_audio.trained_metrics(tmp_path)
    (tmp_path / "metrics.json").write_text('{"threshold": "high"}')
    with pytest.raises(ValueError, match="not a"):
        evaluate_audio.trained_metrics(tmp_path)
