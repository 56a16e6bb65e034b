"""The rollout part of the demo: a candidate version of the trained Hindi classifier whose
scores come out pushed up (as a miscalibrated retrain's would), built beside the live version.
``vigil rollout start`` puts it in shadow before ``vigil run audio`` starts; Hindi clips stream
until its gates decide, and ``vigil rollout status --history`` shows what happened.

The candidate is not recorded as the catalogue's ``candidates`` entry: the demo's model store
is the checkout's ``archives/``, and a deliberately bad build must never be adopted by a
daemon that reads that catalogue later."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from modelzoo import audio_classifier, catalogue
from modelzoo.build import BuildOptions, package_model
from modelzoo.train_audio import archive_spec, next_version
from scripts import demo_audio, harness
from scripts.services.process import REPO_ROOT

LANGUAGE = "hi"
SPEC = archive_spec(REPO_ROOT / "archives" / "manifest.yaml", LANGUAGE)
NSFW_LOGIT_SHIFT = 3.0
ROUNDS = 12
# Small steps, so a few dozen clips decide; every clip is shadow-scored.
GATES = {"VIGIL_ROLLOUT_SHADOW_SAMPLE": "1", "VIGIL_ROLLOUT_MIN_SAMPLES": "12",
         "VIGIL_ROLLOUT_MAX_SAMPLES": "48", "VIGIL_ROLLOUT_POLL_S": "1",
         "VIGIL_ROLLOUT_MAX_P99_RATIO": "0"}


def build_candidate(store: Path) -> str:
    """Build the shifted candidate from the cached trained checkpoint, with the live
    version's threshold; returns its version. Its engine and precision are the manifest's
    (``auto``: chosen anew, as for any retrain): the live version's may not hold the
    candidate's scores to the accuracy guard (bf16 did not, 0.08 from fp32 where the
    pushed-up scores are steep)."""
    spec = SPEC
    live = catalogue.entry(store, spec.name)
    checkpoint = demo_audio.cache_root() / f"{LANGUAGE}-{demo_audio.cache_key(LANGUAGE)}" \
        / "checkpoint"
    candidate = dataclasses.replace(spec, version=next_version(live["version"]),
                                    threshold=live["threshold"], checkpoint=str(checkpoint))
    model = audio_classifier.from_checkpoint(str(checkpoint)).eval()
    with torch.no_grad():
        model.head.bias[model.positive_index] += NSFW_LOGIT_SHIFT
    harness.step(f"building a candidate {spec.name} {candidate.version}: the trained model with "
                 "its scores pushed up, as a miscalibrated retrain's would be")
    with tqdm(total=1, desc=f"building {spec.name} {candidate.version}", unit="archive") as bar:
        package_model(candidate, model, BuildOptions(export_dir=store, release=False,
                                                     live=False), bar)
        bar.update()
    return candidate.version


def rollout(database_url: str, *args: str) -> str:
    """``vigil rollout ARGS`` on the demo's database and catalogue; its table or its error."""
    done = subprocess.run([sys.executable, "-m", "orchestrator.cli", "rollout", *args],
                          env={**os.environ, "DATABASE_URL": database_url}, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    return done.stdout if done.returncode == 0 else done.stderr


def start(database_url: str, version: str) -> None:
    """Start rolling the candidate out, in shadow, before the daemon starts."""
    harness.step(f"vigil rollout start --model {SPEC.name} --candidate {version}")
    print(rollout(database_url, "start", "--model", SPEC.name, "--candidate", version,
                  "--reason", "the demo's shifted candidate"))


def _settled(database_url: str) -> bool:
    rows = harness.query(database_url, "SELECT state FROM model_rollouts")
    return bool(rows) and all(state != "running" for state, in rows)


def run(daemon: harness.Daemon, bootstrap: str, topic: str, spoken: list[dict],
        database_url: str) -> bool:
    """Stream the Hindi clips again, round after round, until the rollout is decided; print
    its history. True when it was decided."""
    hindi = [clip for clip in spoken if clip["language"] == LANGUAGE]
    harness.step(f"the candidate is rolled out in shadow: it scores every {LANGUAGE} clip "
                 "beside the live version; streaming clips until its gates decide")
    for round_ in range(ROUNDS):
        if _settled(database_url):
            break
        before = harness.handled(daemon.metrics())
        harness.produce(bootstrap, topic, [
            (None, json.dumps({**clip, "clip_id": f"{clip['clip_id']}-r{round_}"}).encode())
            for clip in hindi])
        deadline = time.monotonic() + 60
        while harness.handled(daemon.metrics()) < before + len(hindi) and \
                time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(1)  # the shadow requests of the round, and the daemon's next poll
    print(rollout(database_url, "status", "--history", "10"))
    for line in daemon.metrics().splitlines():
        if line.startswith(("vigil_rollout_state{", "vigil_shadow_flip_rate{",
                            "vigil_rollout_gate{", "vigil_rollbacks_total{")):
            print("   ", line)
    return _settled(database_url)
