import pytest
import torch

from modelzoo import audio_classifier, engines


@pytest.fixture(scope="module")
def tiny_model():
    return audio_classifier.from_size("tiny", seed=1).eval()


def test_traced_model_equals_eager_for_batch_sizes_1_3_8(tiny_model):
    traced = engines.trace(tiny_model, torch.randn(2, audio_classifier.CLIP_SAMPLES))
    generator = torch.Generator().manual_seed(3)
    for size in (1, 3, 8):
        batch = torch.randn(size, audio_classifier.CLIP_SAMPLES, generator=generator)
        with torch.inference_mode():
            eager, engine = tiny_model(batch), traced(batch)
        assert engine.shape == (size,)
        assert (eager - engine).abs().max().item() < 1e-4
        assert ((engine >= 0) & (engine <= 1)).all()


def test_check_outputs_rejects_an_engine_that_disagrees(tiny_model):
    other = audio_classifier.from_size("tiny", seed=2).eval()
    batch = [torch.randn(2, 16_000)]
    with pytest.raises(engines.EngineMismatch):
        engines.check_outputs(tiny_model, other, batch, tolerance=1e-9)


def test_saved_engine_loads_and_gives_the_same_scores(tiny_model, tmp_path):
    traced = engines.trace(tiny_model, torch.randn(2, 16_000))
    path = engines.save(traced, tmp_path / "model.pt")
    loaded = torch.jit.load(str(path))
    assert engines.max_abs_difference(traced, loaded, [torch.randn(3, 16_000)]) == 0.0


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_lower_precision_traces_and_stays_close_to_fp32(precision):
    model = audio_classifier.from_size("tiny", seed=3).eval()
    lowered = engines.with_precision(model, precision)
    traced = engines.trace(lowered, model.example(2))
    clips = model.example(4, torch.Generator().manual_seed(1))
    with torch.inference_mode():
        reference, candidate = model(clips), traced(clips)
    check = engines.accuracy_check(reference, candidate, threshold=0.5)
    assert check["passed"] and check["max_difference"] > 0  # changed, but within the limits
    assert engines.max_abs_difference(lowered, traced, [clips]) < 1e-3


def test_the_accuracy_check_fails_on_a_moved_score_or_a_flipped_label():
    reference = torch.tensor([0.2, 0.495, 0.9])
    assert engines.accuracy_check(reference, reference + 0.004, 0.5)["passed"]
    assert not engines.accuracy_check(reference, reference - 0.02, 0.5)["passed"]
    flipped = engines.accuracy_check(reference, torch.tensor([0.2, 0.504, 0.9]), 0.5)
    assert flipped["max_difference"] <= 0.01 and flipped["label_agreement"] < 1
    assert not flipped["passed"]
