"""The VRT part of the demo: a fusion head trained on the served extractors' embeddings of
generated posts whose frames, captions and audio carry their category (cached across runs),
then fresh posts through ``vigil run vrt``: each post's true category beside the predicted
one, and the dead letters."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tqdm import tqdm

from modelzoo import catalogue, fusion, vrt_posts, vrt_training
from modelzoo.build import BuildOptions, package_model
from modelzoo.embeddings_table import read_table
from modelzoo.manifest import load_manifest
from modelzoo.train_audio import next_version
from orchestrator.clock import iso_utc
from scripts import demo_audio, harness, posts
from scripts.services.process import REPO_ROOT, free_port
from scripts.services.torchserve import TorchServe

EXTRACTORS = ("clip_visual", "xlmr_text", "vggish_audio")
TRAINING_POSTS, OTHER_POSTS = 1400, 400
CODE = ("modelzoo/vrt_posts.py", "modelzoo/vrt_training.py", "modelzoo/fusion.py",
        "modelzoo/clip_visual.py", "modelzoo/xlmr_text.py", "modelzoo/vggish.py")


def cache_key(store: Path) -> str:
    """A digest of what decides the trained head: the extractor archives it reads (their
    catalogue entries), the generator, the trainer and the posts' counts."""
    digest = hashlib.sha256(json.dumps(
        [catalogue.entry(store, name) for name in EXTRACTORS] + [TRAINING_POSTS, OTHER_POSTS],
        sort_keys=True, default=str).encode())
    for name in CODE:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def _embed(server: TorchServe, folder: Path, out: Path) -> None:
    subprocess.run([sys.executable, "-m", "orchestrator.cli", "embed", "--posts", str(folder),
                    "--out", str(out)], cwd=REPO_ROOT, check=True,
                   env={**os.environ, **server.client_env()})


def _train(store: Path, workdir: Path, cached: Path) -> None:
    """Generate posts of both templates, embed them through a TorchServe serving the
    extractor archives, train the head and write it and its report to ``cached``."""
    data = workdir / "vrt-training"
    for template, count in (("training", TRAINING_POSTS), ("other", OTHER_POSTS)):
        with tqdm(total=count, desc=f"making {template} posts", unit="post") as progress:
            vrt_posts.generate(data / template, count, template=template, progress=progress)
    server = TorchServe(workdir=workdir / "extractors", model_store=store,
                        ports=(free_port(), free_port(), free_port()))
    harness.step("embedding them through the extractor archives (a TorchServe of its own)")
    try:
        server.start(models=list(EXTRACTORS))
        for template in ("training", "other"):
            _embed(server, data / template, data / f"{template}.jsonl")
    finally:
        server.stop()
    table = read_table(data / "training.jsonl")
    dims = vrt_training.table_dims(table)
    head, report = vrt_training.train(table, dims)
    report["other"] = vrt_training.evaluate(head, read_table(data / "other.jsonl"), dims)
    partial = cached.with_suffix(".partial")
    shutil.rmtree(partial, ignore_errors=True)
    vrt_training.write_outputs(head, report, partial)
    shutil.rmtree(cached, ignore_errors=True)
    partial.rename(cached)


def trained_fusion(store: Path, workdir: Path) -> dict:
    """Build the trained fusion head as the next version of the fusion archive in
    ``store`` (training it first unless the cache holds it); returns its report."""
    cached = demo_audio.cache_root().parent / "demo-vrt" / cache_key(store)
    if not (cached / "report.json").exists():
        harness.step(f"training the VRT fusion head on {TRAINING_POSTS} generated posts "
                     f"(cached for the next run in {cached})")
        _train(store, workdir, cached)
    else:
        harness.step(f"the VRT fusion head is cached ({cached}): building its archive")
    spec = next(s for s in load_manifest(REPO_ROOT / "archives" / "manifest.yaml")
                if s.family == "vrt_fusion")
    trained = dataclasses.replace(spec, version=next_version(spec.version),
                                  checkpoint=str(cached / "fusion.pt"))
    with tqdm(total=1, desc=f"building {spec.name} {trained.version}", unit="archive") as bar:
        package_model(trained, fusion.from_checkpoint(trained.checkpoint),
                      BuildOptions(export_dir=store, release=False), bar)
        bar.update()
    return json.loads((cached / "report.json").read_text())


def _fresh_posts(media: Path) -> list[dict]:
    """Posts the head has not seen, of both templates, as posts.created messages with the
    category each was made with."""
    fresh = []
    for template, count in (("training", 8), ("other", 6)):
        folder = media / f"fresh-{template}"
        for line in vrt_posts.generate(folder, count, template=template, seed=99):
            message = {"post_id": line["post_id"], "user_id": "user-demo",
                       "created_at": iso_utc(), "truth": line["label"], "language": "hi"}
            for field in ("image", "video"):
                if field in line:
                    message[f"{field}_url"] = (folder / line[field]).as_uri()
            fresh.append(message | ({"text": line["text"]} if "text" in line else {}))
    return fresh


def run(workdir: Path, bootstrap: str, server: TorchServe, report: dict) -> bool:
    """Score fresh posts plus the bad ones; print what came out. True when all handled."""
    media = workdir / "vrt-media"
    media.mkdir(exist_ok=True)
    topics = harness.Topics(input="posts.created", output="posts.scored")
    topics.create(bootstrap)
    good = _fresh_posts(media)
    bad = posts.bad_posts(media)
    values = [(p["post_id"].encode(), json.dumps({k: v for k, v in p.items() if k != "reason"})
               .encode()) for p in good + bad]
    daemon = harness.Daemon(workdir=workdir, pipeline="vrt", env={
        "VIGIL_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        **server.client_env(),
        "VIGIL_MEDIA_ALLOWED_SCHEMES": "https,file", "VIGIL_MEDIA_ALLOWED_DIRS": str(media),
        "DATABASE_URL": f"sqlite:///{workdir / 'vigil.db'}"})
    harness.step(f"starting `vigil run vrt`; producing {len(good)} fresh generated posts "
                 f"(videos with sound, images, captions; some with a modality that disagrees "
                 f"or is missing) and {len(bad)} with bad media")
    try:
        daemon.start()
        daemon.wait_ready()
        harness.produce(bootstrap, topics.input, values)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and harness.handled(daemon.metrics()) < len(values):
            time.sleep(0.5)
        metrics = daemon.metrics()
    finally:
        exit_code = daemon.terminate() if daemon.process else None
    scored = [json.loads(m.value()) for m in
              harness.read_topic(bootstrap, topics.output, expect=len(good))]
    harness.step(f"{len(scored)} posts scored (post_scores, posts.scored): true category "
                 "beside the predicted one")
    print(f"    {'post_id':<16} {'modalities':<20} {'true':<9} {'predicted':<9} {'score':>6}")
    hits = 0
    for event in sorted(scored, key=lambda e: e["post_id"]):
        truth = event["extra"].get("truth", "?")
        hits += truth == event["top_category"]
        print(f"    {event['post_id']:<16} {'+'.join(event['modalities']):<20} {truth:<9} "
              f"{event['top_category']:<9} {event['score']:>6.3f}"
              f"{'' if truth == event['top_category'] else '   <- wrong'}")
    print(f"    {hits} of {len(scored)} right here; the head's held-out accuracy "
          f"{report['accuracy']:.2f} (macro-F1 {report['macro_f1']:.2f}), on posts of the "
          f"other template {report['other']['accuracy']:.2f} (macro-F1 "
          f"{report['other']['macro_f1']:.2f}); tiny random-weight extractors, so the "
          "categories come from colours, words and tones, not from what a scene means")
    letters = harness.read_topic(bootstrap, topics.dlq, expect=len(bad))
    harness.step(f"{len(letters)} dead letters (posts.created.dlq)")
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers()}
        print(f"    {letter.key().decode():<12} {headers['vigil-reason']:<18} "
              f"{headers['vigil-error-message'][:70]}")
    print(f"    vrt daemon exited with {exit_code}")
    return exit_code == 0 and harness.handled(metrics) == len(values)
