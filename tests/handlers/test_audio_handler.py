"""The audio handler inside built archives, driven as TorchServe drives it (a fake context)."""

import pytest

from handlers.audio_handler import AudioNsfwHandler
from modelzoo import catalogue
from scripts import clips
from tests.handlers.fake_context import FakeContext, extract_archive

pytestmark = pytest.mark.integration  # builds archives


@pytest.fixture(scope="module")
def model_dir(model_store, tmp_path_factory):
    return extract_archive(catalogue.archive_path(model_store, "audio_nsfw_mr"),
                           tmp_path_factory.mktemp("mr"))


@pytest.fixture(scope="module")
def handler(model_dir):
    handler = AudioNsfwHandler()
    handler.initialize(FakeContext(model_dir))
    return handler


def test_one_result_per_request_with_archive_settings(handler, model_dir):
    context = FakeContext(model_dir)
    requests = [{"body": bytearray(clips.clip(fmt, seconds=2))} for fmt in ("wav", "flac", "mp3")]
    results = handler.handle(requests, context)
    assert len(results) == 3 and context.statuses == {}
    for result in results:
        assert result["model"] == "audio_nsfw_mr"
        assert result["threshold"] == 0.6  # the manifest's per-language threshold
        assert 0.0 <= result["score"] <= 1.0


def test_bad_requests_get_their_own_status_and_the_rest_are_scored(handler, model_dir):
    context = FakeContext(model_dir)
    requests = [
        {"body": bytearray(clips.clip("wav", seconds=1))},
        {"body": bytearray(b"garbage" * 50)},
        {"data": {"clip": "json is not audio"}},
        {"body": bytearray()},
        {"data": bytearray(clips.clip("ogg", seconds=1))},
    ]
    results = handler.handle(requests, context)
    assert sorted(context.statuses) == [1, 2, 3]
    assert context.statuses[1][0] == 415 and "undecodable" in results[1]["error"]
    assert context.statuses[2][0] == 415 and "raw request body" in results[2]["error"]
    assert context.statuses[3][0] == 400 and "empty" in results[3]["error"]
    assert "score" in results[0] and "score" in results[4]


def test_non_finite_clips_are_refused_with_a_phrase_torchserve_can_frame(handler, model_dir):
    context = FakeContext(model_dir)
    requests = [{"body": bytearray(clips.non_finite(float("nan")))},
                {"body": bytearray(clips.clip("wav", seconds=1))},
                {"body": bytearray(clips.non_finite(float("inf"), rate=44_100))}]
    results = handler.handle(requests, context)
    assert sorted(context.statuses) == [0, 2]
    assert all(400 <= code < 500 and "non-finite" in phrase
               for code, phrase in context.statuses.values())
    assert "±Inf" in results[0]["error"]  # the body keeps the full message
    assert 0.0 <= results[1]["score"] <= 1.0


def test_a_multi_clip_request_gets_one_answer_per_part_and_bad_parts_fail_alone(handler,
                                                                                   model_dir):
    context = FakeContext(model_dir)
    good = [bytearray(clips.clip("wav", seconds=1, seed=seed)) for seed in range(3)]
    requests = [
        {"0": good[0], "1": bytearray(b"garbage" * 50), "2": good[1]},
        {"body": good[2]},
    ]
    multi, single = handler.handle(requests, context)
    assert context.statuses == {}  # the multi-clip request itself succeeds
    assert len(multi) == 3 and multi[1]["status"] == 415 and "undecodable" in multi[1]["error"]
    alone = handler.handle([{"body": good[0]}, {"body": good[1]}], FakeContext(model_dir))
    assert [multi[0]["score"], multi[2]["score"]] == pytest.approx([r["score"] for r in alone])
    assert "score" in single


def test_an_aotinductor_archive_is_built_checked_and_served_by_the_same_handler(tmp_path):
    import torch
    from tqdm import tqdm

    from handlers.audio_io import ClipDecoder
    from modelzoo.build import BuildOptions, package_model
    from modelzoo.manifest import ArchiveSpec
    from benchmarks.trivial import TrivialScorer

    spec = ArchiveSpec(name="audio_aoti", family="audio_nsfw", languages=("*",),
                       engine="aotinductor")
    with tqdm([spec], disable=True) as progress:
        built = package_model(spec, TrivialScorer().eval(),
                              BuildOptions(export_dir=tmp_path / "store"), progress)
    model_dir = extract_archive(built.path, tmp_path / "extracted")
    context = FakeContext(model_dir)
    assert context.manifest["model"]["serializedFile"] == "model.pt2"
    handler = AudioNsfwHandler()
    handler.initialize(context)
    audio = [clips.clip("wav", seconds=1, seed=seed) for seed in range(3)]
    results = handler.handle([{"body": bytearray(a)} for a in audio], context)
    decoder = ClipDecoder(sample_rate=16_000, clip_samples=16_000)
    expected = TrivialScorer()(torch.stack([decoder.decode(a) for a in audio])).tolist()
    assert [r["score"] for r in results] == pytest.approx(expected, abs=1e-5)


def _wav(samples) -> bytearray:
    return bytearray(clips.encode(samples[:, None].astype("float32"), 16_000, "wav"))


def _counting_handler(model_dir, **settings) -> tuple[AudioNsfwHandler, list[int]]:
    """The archive's handler with ``settings`` added to its handler section, counting the
    rows of each model call."""
    context = FakeContext(model_dir)
    context.model_yaml_config["handler"].update(settings)
    handler = AudioNsfwHandler()
    handler.initialize(context)
    rows_seen: list[int] = []
    model = handler.model

    def counting(*inputs):
        rows_seen.append(int(inputs[0].shape[0]))
        return model(*inputs)

    handler.model = counting
    return handler, rows_seen


def _gated_handler(model_dir, floor_dbfs: float) -> tuple[AudioNsfwHandler, list[int]]:
    """The archive's handler with an energy gate at ``floor_dbfs``, counting model rows."""
    return _counting_handler(model_dir, energy_gate_dbfs=floor_dbfs)


def test_the_energy_gate_keeps_inaudible_clips_from_the_model_and_lets_any_sound_through(
        model_dir):
    import numpy as np

    handler, rows_seen = _gated_handler(model_dir, -50.0)
    rng = np.random.default_rng(0)
    rate, seconds = 16_000, 4
    silence = np.zeros(rate * seconds)
    room_tone = 10 ** (-65 / 20) * rng.standard_normal(rate * seconds)  # -65 dBFS
    one_word = room_tone.copy()
    one_word[rate: rate + rate // 5] += 0.1 * rng.standard_normal(rate // 5)  # 200 ms, -20 dBFS
    quiet_music = 10 ** (-40 / 20) * np.sqrt(2) * np.sin(
        2 * np.pi * 220 * np.arange(rate * seconds) / rate)  # a -40 dBFS tone
    bodies = [silence, room_tone, one_word, quiet_music]
    context = FakeContext(model_dir)
    results = handler.handle([{"body": _wav(b)} for b in bodies], context)
    assert context.statuses == {}
    assert [r["scored_by"] for r in results] == ["energy_gate", "energy_gate", "model", "model"]
    assert rows_seen[-1] == 2  # only the two audible clips reached the model
    assert all(r["score"] == 0.0 and r["label"] == "safe" for r in results[:2])
    assert results[0]["level_dbfs"] == -120.0
    assert results[1]["level_dbfs"] == pytest.approx(-65, abs=3)
    assert results[2]["level_dbfs"] == pytest.approx(-20, abs=3)
    # The clips that passed score what they score without a gate.
    ungated = AudioNsfwHandler()
    without_gate = FakeContext(model_dir)
    without_gate.model_yaml_config["handler"].pop("energy_gate_dbfs", None)  # the manifest's
    ungated.initialize(without_gate)
    plain = ungated.handle([{"body": _wav(b)} for b in bodies[2:]], FakeContext(model_dir))
    assert [r["score"] for r in results[2:]] == pytest.approx([r["score"] for r in plain])
    assert all(r["scored_by"] == "model" and "level_dbfs" not in r for r in plain)


def test_a_batch_with_nothing_audible_never_calls_the_model(model_dir):
    import numpy as np

    handler, rows_seen = _gated_handler(model_dir, -50.0)
    calls_before = len(rows_seen)
    results = handler.handle([{"body": _wav(np.zeros(16_000))}] * 3, FakeContext(model_dir))
    assert [r["scored_by"] for r in results] == ["energy_gate"] * 3
    assert len(rows_seen) == calls_before


def test_the_screen_answers_clips_under_its_threshold_and_the_model_scores_the_rest(
        model_dir, tmp_path):
    import numpy as np
    import torch

    from modelzoo import screen

    screening = screen.new_screen(seed=5)
    screening.save_pretrained(tmp_path / "screen")
    screen.trace_into(str(tmp_path / "screen"), model_dir)  # as the build packs it
    rng = np.random.default_rng(1)
    bodies = [_wav(0.1 * rng.standard_normal(16_000 * 3)) for _ in range(6)]
    plain = AudioNsfwHandler()
    plain.initialize(FakeContext(model_dir))
    unscreened = plain.handle([{"body": b} for b in bodies], FakeContext(model_dir))
    # Half the clips under the screen's threshold: just over its median score of them.
    decoded = torch.stack([plain.decoder.decode(bytes(b)) for b in bodies])
    with torch.inference_mode():
        threshold = float(screening(decoded).median()) + 1e-6
    handler, rows_seen = _counting_handler(model_dir, screen={
        "checkpoint": str(tmp_path / "screen"), "threshold": threshold})
    results = handler.handle([{"body": b} for b in bodies], FakeContext(model_dir))
    passed = [r["screen_score"] >= threshold for r in results]
    assert sum(passed) == 3 and rows_seen == [3]  # only the clips it passed reached the model
    for result, plain_result, through in zip(results, unscreened, passed):
        assert result["scored_by"] == ("model" if through else "screen")
        expected = plain_result["score"] if through else 0.0
        assert result["score"] == pytest.approx(expected, abs=1e-6)
        assert through or result["label"] == "safe"
