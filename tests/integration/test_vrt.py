"""VRT against a real TorchServe (the tiny extractor and fusion archives), a real broker and
real databases: the extractors as embedding services, and `vigil run vrt` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

import httpx
import pytest
import torch

from handlers.clip_handler import mean_embedding
from handlers.visual_io import FramePreparer
from modelzoo import archiver, catalogue, families
from modelzoo.build import seed_for
from modelzoo.embeddings_table import read_table
from modelzoo.vrt_training import table_dims
from scripts import harness, posts

pytestmark = pytest.mark.integration


def predict(server, model: str, body: bytes) -> httpx.Response:
    return server.predict(model, body)


def test_a_video_of_n_seconds_gives_n_frames_and_their_mean_embedding(torchserve, manifest,
                                                                      model_store):
    body = posts.video(6, fps=5, seed=3)
    answer = predict(torchserve, "clip_visual", body).json()
    assert answer["frames"] == 6 and answer["kind"] == "video"

    spec = next(s for s in manifest if s.name == "clip_visual")
    settings = archiver.handler_settings(catalogue.archive_path(model_store, "clip_visual"))
    frames, _ = FramePreparer(image_size=settings["image_size"], mean=settings["mean"],
                              std=settings["std"])(body)
    eager = families.load(spec, "tiny", seed_for(spec.name), model_store).eval()
    with torch.inference_mode():
        direct = mean_embedding(eager(frames))
    served = torch.tensor(answer["embedding"])
    assert len(answer["embedding"]) == answer["embedding_dim"] == settings["embedding_dim"]
    assert torch.allclose(served, direct, atol=1e-4)
    assert abs(served.norm().item() - 1) < 1e-4


def test_each_extractor_embeds_what_it_is_given(torchserve, model_store):
    image = predict(torchserve, "clip_visual", posts.image(1)).json()
    assert (image["frames"], image["kind"]) == (1, "image")
    text = predict(torchserve, "xlmr_text", json.dumps({"text": "नमस्ते video"}).encode()).json()
    dims = catalogue.entry(model_store, "vrt_fusion")["inputs"]
    assert len(text["embedding"]) == dims["text"]
    audio = predict(torchserve, "vggish_audio", posts.video(3, seed=2)).json()
    assert len(audio["embedding"]) == dims["audio"] and audio["examples"] == 3
    silent = predict(torchserve, "vggish_audio", posts.video(2, audio=False)).json()
    assert silent["embedding"] is None and silent["reason"] == "no audio track"


def test_bad_media_and_missing_modalities_at_the_archives(torchserve, model_store):
    assert predict(torchserve, "clip_visual", b"not a video" * 50).status_code == 415
    too_long = predict(torchserve, "clip_visual", posts.long_video(7200))
    assert too_long.status_code == 413 and "7201 s" in too_long.text
    assert predict(torchserve, "xlmr_text", b"   ").status_code == 400
    fused = predict(torchserve, "vrt_fusion", json.dumps({"visual": None, "text": None,
                                                          "audio": None}).encode()).json()
    assert math.isclose(sum(fused["categories"].values()), 1, abs_tol=1e-5)
    assert fused["score"] == pytest.approx(1 - fused["categories"]["safe"])
    wrong = predict(torchserve, "vrt_fusion", json.dumps({"visual": [0.1, 0.2]}).encode())
    assert wrong.status_code == 400 and "expected" in wrong.text
    dims = catalogue.entry(model_store, "vrt_fusion")["inputs"]
    for value in ("NaN", "Infinity"):
        audio = "[" + ", ".join([value] + ["0.1"] * (dims["audio"] - 1)) + "]"
        poisoned = predict(torchserve, "vrt_fusion", f'{{"audio": {audio}}}'.encode())
        assert poisoned.status_code == 400 and "non-finite" in poisoned.text


def test_fifty_posts_end_to_end(tmp_path, tansu, torchserve, database_url, request):
    prefix = f"v{abs(hash(request.node.nodeid)) % 10**8}"
    topics = harness.Topics(input=f"{prefix}.created", output=f"{prefix}.scored")
    topics.create(tansu.bootstrap)
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    good, bad = posts.good_posts(50, media_dir), posts.bad_posts(media_dir)
    daemon = harness.Daemon(workdir=tmp_path, pipeline="vrt", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": tansu.bootstrap,
        "VIGIL_KAFKA_GROUP_ID": f"{prefix}-group",
        "VIGIL_KAFKA_INPUT_TOPIC": topics.input, "VIGIL_KAFKA_OUTPUT_TOPIC": topics.output,
        **torchserve.client_env(),
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "https,file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media_dir),
        "DATABASE_URL": database_url})
    values = [(p["post_id"].encode(), json.dumps({k: v for k, v in p.items() if k != "reason"})
               .encode()) for p in good + bad]
    harness.produce(tansu.bootstrap, topics.input, values)
    try:
        daemon.start()
        daemon.wait_ready()
        deadline = time.monotonic() + 240
        while harness.handled(daemon.metrics()) < len(values):
            assert time.monotonic() < deadline, daemon.log()
            time.sleep(1)
        metrics = daemon.metrics()
        assert daemon.terminate() == 0
    finally:
        daemon.kill()

    rows = harness.query(database_url, "SELECT post_id, score, categories, top_category "
                         "FROM post_scores")
    assert sorted(r[0] for r in rows) == sorted(p["post_id"] for p in good)
    for _, score, categories, top in rows:
        probabilities = json.loads(categories)
        assert len(probabilities) == 7 and math.isclose(sum(probabilities.values()), 1,
                                                        abs_tol=1e-4)
        assert 0 <= score <= 1 and score == pytest.approx(1 - probabilities["safe"], abs=1e-6)
        assert top == max(probabilities, key=probabilities.get)
    stored_posts = harness.query(database_url, "SELECT COUNT(*) FROM posts")[0][0]
    assert stored_posts == len(good)  # the triage's user history grows from here

    events = {json.loads(m.value())["post_id"]: json.loads(m.value())
              for m in harness.read_topic(tansu.bootstrap, topics.output, expect=len(good))}
    assert set(events) == {p["post_id"] for p in good}
    assert events["post-0"]["modalities"] == ["audio", "text", "visual"]
    assert events["post-1"]["modalities"] == ["visual"]
    assert events["post-2"]["modalities"] == ["text"]
    assert events["post-3"]["modalities"] == ["text", "visual"]  # no audio track
    assert events["post-4"]["modalities"] == ["text", "visual"]  # an animated GIF

    letters = harness.read_topic(tansu.bootstrap, topics.dlq, expect=len(bad))
    reasons = {m.key().decode(): dict(m.headers())["vigil-reason"].decode()
               for m in letters}
    assert reasons == {p["post_id"]: p["reason"] for p in bad}
    # created_at is hours in the past: every post misses the 10-minute SLA and says so.
    assert harness.metric_value(metrics, "vigil_vrt_sla_missed_total") == len(good)
    # Every fused score is observed per fusion version; no reference for a distribution head.
    fusion = {"pipeline": "vrt", "model": "vrt_fusion", "version": "1.0", "language": "*"}
    assert harness.sample_value(metrics, "vigil_score_count", **fusion) == len(good)
    assert "vigil_score_psi{" not in metrics


def test_vigil_embed_builds_a_training_table_through_the_archives(tmp_path, torchserve,
                                                                  model_store):
    folder = tmp_path / "posts"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(posts.video(2, seed=1))
    (folder / "b.png").write_bytes(posts.image(2))
    (folder / "c.mp4").write_bytes(posts.video(2, audio=False))
    lines = [{"post_id": "a", "label": "violence", "video": "a.mp4", "text": "fight"},
             {"post_id": "b", "label": "safe", "image": "b.png"},
             {"post_id": "c", "label": "safe", "video": "c.mp4"},
             {"post_id": "d", "label": "hate", "text": "words"}]
    (folder / "posts.jsonl").write_text("\n".join(json.dumps(line) for line in lines))
    out = tmp_path / "embeddings.jsonl"
    env = {**os.environ, **torchserve.client_env()}
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "embed", "--posts", str(folder),
                    "--out", str(out)], env=env, check=True, capture_output=True)
    table = read_table(out).set_index("post_id")
    dims = catalogue.entry(model_store, "vrt_fusion")["inputs"]
    assert table_dims(table) == dims
    present = {p: [m for m in ("visual", "text", "audio") if table.loc[p, m] is not None]
               for p in table.index}
    assert present == {"a": ["visual", "text", "audio"], "b": ["visual"], "c": ["visual"],
                       "d": ["text"]}
