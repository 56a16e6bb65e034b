"""Engines for every family: built, checked against eager, saved, and loaded back by the
handlers' runtime; lower precisions through their calibration paths; the auto choice."""

from __future__ import annotations

import pytest
import torch

from tqdm import tqdm

from handlers import runtime
from modelzoo import (accuracy, audio_classifier, clip_visual, engine_choice, engines,
                      families, fusion, vggish, xlmr_text)
from modelzoo.build import BuildOptions, package_model
from modelzoo.manifest import ArchiveSpec

FAMILIES = {
    "audio_nsfw": lambda: audio_classifier.from_size("tiny", seed=1),
    "clip_visual": lambda: clip_visual.from_size("tiny", 1),
    "xlmr_text": lambda: xlmr_text.from_size("tiny", 2),
    "vggish_audio": lambda: vggish.from_size("tiny", 3),
    "vrt_fusion": lambda: fusion.random_head({"visual": 8, "text": 6, "audio": 4}),
}


def checks(model, sizes=(1, 3, 8)):
    generator = torch.Generator().manual_seed(7)
    return [model.example(size, generator) for size in sizes]


@pytest.mark.parametrize("engine", ["torchscript", "openvino", "onnxruntime"])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_exports_to_every_engine_and_loads_back_in_the_handler(family, engine,
                                                                            tmp_path):
    model = FAMILIES[family]().eval()
    built = engines.build(engine, "fp32", model, model.example(2), tmp_path / "scratch")
    batches = checks(model)
    assert accuracy.check_exact(model, built, batches) <= accuracy.DEFAULT_TOLERANCE
    folder = tmp_path / "artifact"
    folder.mkdir()
    artifact = built.save(folder)
    loaded = runtime.load(str(artifact.serialized), device=torch.device("cpu"),
                          precision="fp32", threads=1)
    assert loaded.engine == engine and loaded.precision == "fp32"
    assert accuracy.max_abs_difference(model, loaded.run, batches) <= accuracy.DEFAULT_TOLERANCE


@pytest.mark.integration  # compiles C++ for a few seconds
def test_aotinductor_builds_at_fp32_and_bf16_with_a_dynamic_batch(tmp_path):
    model = FAMILIES["vrt_fusion"]().eval()
    for precision in ("fp32", "bf16"):
        built = engines.build("aotinductor", precision, model, model.example(2),
                              tmp_path / precision)
        kind = families.OUTPUT_KIND["vrt_fusion"]
        engine_choice.verify(built, model, precision, kind, checks(model), threshold=0.5)


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime", "torchscript"])
def test_int8_is_calibrated_and_judged_on_representative_audio(engine, tmp_path):
    model = FAMILIES["audio_nsfw"]().eval()
    calibration = families.calibration("audio_nsfw", model)
    built = engines.build(engine, "int8", model, model.example(2), tmp_path, calibration)
    assert built.precision == "int8"
    checked = families.checks("audio_nsfw", model, (1, 3, 8))
    scores = accuracy.outputs(built, checked)
    assert len(scores) == 24 and bool(((scores >= 0) & (scores <= 1)).all())
    # A random head's scores hardly move, so little is left to track: the guard judges it by
    # that spread (tests/modelzoo/test_accuracy_guard.py has engines it must refuse).
    result = accuracy.compare("score", accuracy.outputs(model, checked), scores, 0.5)
    assert result["difference_bound"] <= accuracy.SPREAD_SHARE * result["eager_spread"] + 1e-9


def test_a_pair_an_engine_does_not_offer_is_refused(tmp_path):
    model = FAMILIES["vrt_fusion"]().eval()
    with pytest.raises(engines.EngineError, match="onnxruntime has no bf16"):
        engines.build("onnxruntime", "bf16", model, model.example(2), tmp_path)


def test_a_broken_export_fails_the_build(tmp_path, monkeypatch):
    real_build = engines.build

    def broken(*args, **kwargs):  # an exporter that gets the graph subtly wrong
        built = real_build(*args, **kwargs)
        return engines.Engine(built.name, built.precision, lambda *x: built(*x) + 0.05,
                              built.save)

    monkeypatch.setattr(engines, "build", broken)
    spec = ArchiveSpec(name="vrt_fusion", family="vrt_fusion", engine="onnxruntime")
    model = FAMILIES["vrt_fusion"]().eval()
    with tqdm([spec], disable=True) as progress, pytest.raises(accuracy.EngineMismatch):
        package_model(spec, model, BuildOptions(export_dir=tmp_path, size="tiny"), progress)
    assert not list(tmp_path.glob("*.mar"))  # nothing packaged


def test_the_accuracy_check_by_what_the_output_means():
    scores = torch.tensor([0.2, 0.495, 0.9])
    assert accuracy.compare("score", scores, scores + 0.004, 0.5)["passed"]
    assert not accuracy.compare("score", scores, scores - 0.02, 0.5)["passed"]
    flipped = accuracy.compare("score", scores, torch.tensor([0.2, 0.504, 0.9]), 0.5)
    assert flipped["max_difference"] <= 0.01 and not flipped["passed"]
    distribution = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    swapped = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.3, 0.5]])
    assert not accuracy.compare("distribution", distribution, swapped)["passed"]
    embedding = torch.nn.functional.normalize(torch.randn(4, 16), dim=-1)
    assert accuracy.compare("embedding", embedding, embedding * 1.001)["passed"]
    assert not accuracy.compare("embedding", embedding, -embedding)["passed"]


def test_auto_picks_the_fastest_passing_pair_and_never_emulated_bf16(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_choice, "cpu_has_native_bf16", lambda: False)
    assert all(p != "bf16" for _, p in engine_choice.candidates("cpu"))
    model = FAMILIES["vrt_fusion"]().eval()
    generator = torch.Generator().manual_seed(0)
    engine, trials = engine_choice.choose(
        model, kind="distribution", threshold=0.5, example=model.example(2),
        checks=checks(model), calibration=families.calibration("vrt_fusion", model),
        timed=model.example(8, generator), scratch=tmp_path)
    passing = [t for t in trials if t.passed]
    fastest = min(passing, key=lambda t: t.seconds)
    assert (engine.name, engine.precision) == (fastest.engine, fastest.precision)
    assert {(t.engine, t.precision) for t in trials} == set(engine_choice.candidates("cpu"))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_an_autocast_archive_runs_its_fp32_twin_where_the_cpu_lacks_the_precision(
        precision, tmp_path, monkeypatch):
    model = FAMILIES["vrt_fusion"]().eval()
    built = engines.build("torchscript", precision, model, model.example(2), tmp_path / "s")
    folder = tmp_path / "artifact"
    folder.mkdir()
    artifact = built.save(folder)
    assert [p.name for p in artifact.extra] == ["model.fp32.pt"]
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)  # fp16: never on a CPU
    loaded = runtime.load(str(artifact.serialized), device=torch.device("cpu"),
                          precision=precision, threads=1)
    assert loaded.precision == "fp32"  # reported as what it really runs
    assert accuracy.max_abs_difference(model, loaded.run, checks(model)) <= 1e-5


def test_fp16_is_a_candidate_on_a_gpu_only():
    assert ("torchscript", "fp16") in engine_choice.candidates("cuda")
    assert ("aotinductor", "fp16") in engine_choice.candidates("cuda")
    assert all(p != "fp16" for _, p in engine_choice.candidates("cpu"))


def test_a_score_archive_records_its_reference_distribution_and_others_do_not(tmp_path):
    from modelzoo import catalogue

    audio = ArchiveSpec(name="audio_nsfw_hi", family="audio_nsfw", languages=("hi",))
    fusion = ArchiveSpec(name="vrt_fusion", family="vrt_fusion")
    options = BuildOptions(export_dir=tmp_path, size="tiny")
    with tqdm([audio, fusion], disable=True) as progress:
        package_model(audio, FAMILIES["audio_nsfw"]().eval(), options, progress)
        package_model(fusion, FAMILIES["vrt_fusion"]().eval(), options, progress)
    reference = catalogue.entry(tmp_path, "audio_nsfw_hi")["score_reference"]
    calibration_clips = sum(len(batch) for batch in families.calibration(
        "audio_nsfw", FAMILIES["audio_nsfw"]()))
    assert reference["count"] == calibration_clips
    assert sum(reference["fractions"]) == pytest.approx(1.0)
    assert reference["edges"][-1] == 1.0 and len(reference["edges"]) == len(reference["fractions"])
    assert "score_reference" not in catalogue.entry(tmp_path, "vrt_fusion")
