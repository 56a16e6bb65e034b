"""``layout: auto``: the build times workers x threads with the packaged artifact and keeps
the fastest layout that scores like the checked engine."""

import numpy as np
import pytest
import torch
from tqdm import tqdm

from benchmarks.trivial import TrivialScorer
from modelzoo import catalogue, layout
from modelzoo.build import BuildOptions, package_model
from modelzoo.manifest import ArchiveSpec, ManifestError
from tests.handlers.fake_context import extract_archive

pytestmark = pytest.mark.integration  # builds an archive, starts processes


def test_the_splits_of_a_machines_cores():
    assert layout.layouts(2) == [layout.Layout(2, 1), layout.Layout(1, 2)]
    assert [(l.workers, l.threads) for l in layout.layouts(8)] == [(8, 1), (4, 2), (2, 4),
                                                                    (1, 8)]
    assert layout.layouts(1) == [layout.Layout(1, 1)]


def test_an_unknown_layout_is_refused():
    with pytest.raises(ManifestError, match="layout"):
        ArchiveSpec(name="a", family="audio_nsfw", languages=("*",), layout="fastest")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    spec = ArchiveSpec(name="audio_layout", family="audio_nsfw", languages=("*",),
                       layout="auto")
    store = tmp_path_factory.mktemp("store")
    with tqdm([spec], disable=True) as progress:
        archive = package_model(spec, TrivialScorer().eval(), BuildOptions(export_dir=store),
                                progress)
    return store, archive


def test_the_build_packages_the_fastest_layout_it_timed(built, tmp_path):
    store, archive = built
    entry = catalogue.entry(store, "audio_layout")
    trials = entry["layout_trials"]
    cores = layout.runtime.available_cores()
    assert [(t["workers"], t["threads"]) for t in trials] == [
        (l.workers, l.threads) for l in layout.layouts(cores)]
    assert all(t["clips_per_s"] > 0 and t["max_difference"] <= 1e-3 for t in trials)
    fastest = max(trials, key=lambda t: t["clips_per_s"])
    assert entry["layout"] == {"workers": fastest["workers"],
                                                 "threads": fastest["threads"]}
    config = (extract_archive(archive.path, tmp_path) / "model-config.yaml").read_text()
    assert f"minWorkers: {fastest['workers']}" in config
    assert f"intra_op_threads: {fastest['threads']}" in config


def test_a_layout_that_scores_unlike_the_checked_engine_fails(built, tmp_path):
    store, archive = built
    folder = extract_archive(archive.path, tmp_path)
    batch = torch.randn(2, 16_000)
    checks = [torch.randn(2, 16_000)]
    truth = [TrivialScorer()(checks[0]).numpy()]
    honest = layout.time_layout(layout.Layout(1, 1), folder / "model.pt", "fp32", batch,
                                checks, truth)
    assert honest.clips_per_s > 0 and honest.error is None
    moved = layout.time_layout(layout.Layout(1, 1), folder / "model.pt", "fp32", batch,
                               checks, [truth[0] + np.float32(0.01)])
    assert moved.clips_per_s is None and "moved" in moved.error
    missing = layout.time_layout(layout.Layout(1, 1), folder / "absent.pt", "fp32", batch,
                                 checks, truth)
    assert missing.clips_per_s is None and missing.error
