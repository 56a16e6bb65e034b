"""``layout: auto``: the build times workers x threads with the packaged artifact and keeps
the fastest layout that scores like the checked engine."""

import time

import numpy as np
import pytest
import torch
import yaml
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
    assert [(t["workers"], t["threads"], t["rows"]) for t in trials] == [
        (split.workers, split.threads, rows) for split in layout.layouts(cores)
        for rows in (0, *layout.CHUNKS)]
    assert all(t["clips_per_s"] > 0 and t["max_difference"] <= 1e-3 for t in trials)
    fastest = max(t["clips_per_s"] for t in trials)
    chosen = entry["layout"]
    kept = next(t for t in trials if (t["workers"], t["threads"], t["rows"]) == (
        chosen["workers"], chosen["threads"], chosen["rows_per_call"]))
    assert kept["clips_per_s"] >= fastest * (1 - layout.CHUNK_MARGIN)
    config = yaml.safe_load(
        (extract_archive(archive.path, tmp_path) / "model-config.yaml").read_text())
    assert config["minWorkers"] == config["maxWorkers"] == chosen["workers"]
    assert config["handler"]["intra_op_threads"] == chosen["threads"]
    assert config["handler"].get("max_rows", 0) == chosen["rows_per_call"]


def test_of_splits_about_as_fast_the_one_with_fewest_calls_per_batch_is_kept(monkeypatch):
    times = {0: 10.0, 1: 10.3, 2: 9.0, 4: 12.0}  # clips/s by rows per call

    def timed(split, *args, **kwargs):
        return [layout.LayoutTrial(layout.Layout(split.workers, split.threads, rows), speed,
                                   0.0) for rows, speed in times.items()]

    monkeypatch.setattr(layout, "time_split", timed)
    best, _ = layout.choose(None, "fp32", None, [], [], cores=1)
    assert best == layout.Layout(1, 1, 4)  # 12 clips/s
    times[4] = 10.4  # now whole batches (10.0) are within 5% of the fastest
    best, _ = layout.choose(None, "fp32", None, [], [], cores=1)
    assert best == layout.Layout(1, 1, 0)


def test_a_layout_that_scores_unlike_the_checked_engine_fails(built, tmp_path):
    store, archive = built
    folder = extract_archive(archive.path, tmp_path)
    batch = torch.randn(2, 16_000)
    checks = [torch.randn(2, 16_000)]
    truth = [TrivialScorer()(checks[0]).numpy()]
    honest = layout.time_split(layout.Layout(1, 1), folder / "model.pt", "fp32", batch,
                               checks, truth)
    assert [trial.layout.rows for trial in honest] == [0, 1]  # a batch of 2: whole, or 1 by 1
    assert all(trial.clips_per_s > 0 and trial.error is None for trial in honest)
    [moved] = layout.time_split(layout.Layout(1, 1), folder / "model.pt", "fp32", batch,
                                checks, [truth[0] + np.float32(0.01)])
    assert moved.clips_per_s is None and "moved" in moved.error
    [missing] = layout.time_split(layout.Layout(1, 1), folder / "absent.pt", "fp32", batch,
                                  checks, truth)
    assert missing.clips_per_s is None and missing.error


def test_a_worker_that_dies_without_answering_fails_its_split_at_once():
    import queue
    from types import SimpleNamespace

    # As OpenVINO's worker did under an ISA cap: killed by SIGSEGV, no answer sent.
    crashed = [SimpleNamespace(exitcode=None), SimpleNamespace(exitcode=-11)]
    started = time.monotonic()
    with pytest.raises(layout.LayoutError, match="exit code -11"):
        layout._answers(crashed, queue.Queue())
    assert time.monotonic() - started < 10  # not the 600 s a missing answer may take
    answered = queue.Queue()
    answered.put((0, {0: 1.0}, [], None))
    assert layout._answers([SimpleNamespace(exitcode=0)], answered) == [(0, {0: 1.0}, [], None)]
