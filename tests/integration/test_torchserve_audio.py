"""The audio archives served by a real TorchServe with Vigil's config.properties."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import time

import httpx
import psutil
import pytest
import torch
import torchaudio

from modelzoo.archiver import tool_path
from orchestrator.catalogue import Catalogue, ModelEntry
from orchestrator.config import TorchServeConfig
from orchestrator.errors import ConfigError, MediaTooLarge, UndecodableMedia
from orchestrator.serving import TorchServeClient
from scripts import clips
from scripts.services.process import REPO_ROOT
from scripts.services.torchserve import FRONTEND_MARKER, WORKER_MARKER, TorchServe

pytestmark = pytest.mark.integration

MODEL = "audio_nsfw_hi"


def _auth(server: TorchServe, which: str = "inference") -> dict[str, str]:
    return server.auth(which)


def _predict(server: TorchServe, body: bytes, model: str = MODEL) -> httpx.Response:
    return httpx.post(f"{server.inference_url}/predictions/{model}", content=body,
                      headers=_auth(server), timeout=60)


def _serving_pids() -> set[int]:
    """Pids of every TorchServe frontend and worker process on this machine."""
    found = set()
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if FRONTEND_MARKER in cmdline or WORKER_MARKER in cmdline:
            found.add(process.pid)
    return found


def test_every_manifest_archive_is_served_and_healthy(torchserve, manifest):
    ping = httpx.get(f"{torchserve.inference_url}/ping", headers=_auth(torchserve), timeout=5)
    assert ping.status_code == 200 and ping.json()["status"] == "Healthy"
    for spec in manifest:
        description = torchserve.describe(spec.name)
        assert description["batchSize"] == spec.batch_size
        assert len(torchserve.ready_workers(spec.name)) == spec.workers
    # Archives are unpacked inside the server's workdir, which goes with it, not in /tmp.
    assert len(list((torchserve.workdir / "models").iterdir())) == len(manifest)


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg", "opus", "mp3", "m4a"])
@pytest.mark.parametrize("rate", [16_000, 48_000])
def test_encoded_clips_score_in_unit_interval(torchserve, fmt, rate):
    response = _predict(torchserve, clips.clip(fmt, rate=rate, seconds=5, seed=rate))
    assert response.status_code == 200, response.text
    result = response.json()
    assert 0.0 <= result["score"] <= 1.0
    assert result["label"] == ("nsfw" if result["score"] >= result["threshold"] else "safe")
    assert result["model"] == MODEL and result["model_version"] == "1.0"


def test_stereo_44k_is_scored_as_its_mono_16k_version(torchserve):
    stereo = clips.synth(20, 44_100, channels=2, seed=7)
    # What the handler should make of it, resampled here, and what it would make of it if it
    # ignored the header's rate: the same samples read as 16 kHz.
    reference = torchaudio.functional.resample(torch.from_numpy(stereo.mean(axis=1)),
                                               44_100, 16_000).numpy()[:, None]
    stereo_score = _predict(torchserve, clips.encode_float(stereo, 44_100)).json()["score"]
    reference_score = _predict(torchserve, clips.encode_float(reference, 16_000)).json()["score"]
    misread_score = _predict(torchserve, clips.encode_float(stereo[:, :1], 16_000)).json()["score"]
    assert abs(stereo_score - reference_score) < abs(stereo_score - misread_score) / 4


async def test_one_garbage_body_in_a_batch_of_eight_fails_alone(torchserve):
    bodies = [clips.clip("wav", seconds=3, seed=i) for i in range(7)]
    bodies.insert(3, b"this is not audio at all" * 10)
    async with httpx.AsyncClient(headers=_auth(torchserve), timeout=60) as client:
        responses = await asyncio.gather(*(
            client.post(f"{torchserve.inference_url}/predictions/{MODEL}", content=body)
            for body in bodies
        ))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 7
    bad = responses[3]
    assert 400 <= bad.status_code < 500
    assert "undecodable audio" in bad.text


async def test_one_multipart_request_scores_a_batch_and_refuses_bad_parts_alone(torchserve):
    good = [clips.clip("wav", seconds=3, seed=i) for i in range(5)]
    too_big = b"x" * (17 * 1024 * 1024)  # over config.properties' max_request_size
    bodies = [good[0], b"this is not audio at all" * 10, *good[1:3], too_big, *good[3:]]
    # A limit of three clips per request: the batch needs several requests, stitched in order.
    config = TorchServeConfig(url=torchserve.inference_url, key_file=str(torchserve.key_file),
                              max_request_bytes=3 * (len(good[0]) + 256), retry_budget_s=10)
    model = Catalogue.load(torchserve.client_env()["VIGIL_TORCHSERVE_CATALOGUE"]).live(MODEL)
    async with TorchServeClient(config) as client:
        results = await client.predict_batch(model, bodies)
        alone = [await client.predict(model, body) for body in good]
    assert len(results) == len(bodies)
    assert isinstance(results[1], UndecodableMedia) and "undecodable audio" in str(results[1])
    assert isinstance(results[4], MediaTooLarge)
    scored = [results[i] for i in (0, 2, 3, 5, 6)]
    assert [r["score"] for r in scored] == pytest.approx([r["score"] for r in alone], abs=1e-5)
    assert all(r["model"] == MODEL for r in scored)


async def test_start_up_finds_a_routed_model_or_version_torchserve_does_not_serve(torchserve):
    catalogue = Catalogue.load(torchserve.client_env()["VIGIL_TORCHSERVE_CATALOGUE"])
    served = catalogue.live(MODEL)
    config = TorchServeConfig(url=torchserve.inference_url, key_file=str(torchserve.key_file),
                              startup_timeout_s=30)
    async with TorchServeClient(config) as client:
        await client.check_served([served])
        missing = [ModelEntry(name=MODEL, version="9.9", family="audio_nsfw", file="x.mar"),
                   ModelEntry(name="audio_nsfw_xx", version="1.0", family="audio_nsfw",
                              file="y.mar")]
        with pytest.raises(ConfigError, match="does not serve") as caught:
            await client.check_served([served, *missing])
    assert "audio_nsfw_hi 9.9" in str(caught.value) and "audio_nsfw_xx 1.0" in str(caught.value)
    assert f"{MODEL} {served.version}'" not in str(caught.value)


def _assert_refused(response: httpx.Response) -> None:
    # TorchServe 0.12 answers a missing or wrong token with 400 InvalidKeyException, not 401.
    assert response.status_code in (400, 401)
    assert response.json()["type"] == "InvalidKeyException"


def test_prediction_without_the_token_is_refused(torchserve):
    body = clips.clip("wav", seconds=1)
    url = f"{torchserve.inference_url}/predictions/{MODEL}"
    _assert_refused(httpx.post(url, content=body, timeout=30))
    wrong = {"Authorization": "Bearer not-the-key"}
    _assert_refused(httpx.post(url, content=body, headers=wrong, timeout=30))
    management_key = _auth(torchserve, "management")
    _assert_refused(httpx.post(url, content=body, headers=management_key, timeout=30))
    assert _predict(torchserve, body).status_code == 200


def test_management_api_cannot_register_models(torchserve):
    response = httpx.post(f"{torchserve.management_url}/models",
                          params={"url": "https://example.invalid/evil.mar"},
                          headers=_auth(torchserve, "management"), timeout=10)
    assert response.status_code >= 400
    assert "disabled" in response.text.lower() or "not allowed" in response.text.lower()


async def test_killed_worker_is_replaced_and_requests_succeed(torchserve):
    workers = torchserve.ready_workers(MODEL)
    victim = workers[0]["pid"]
    body = clips.clip("wav", seconds=2)
    async with httpx.AsyncClient(headers=_auth(torchserve), timeout=60) as client:
        url = f"{torchserve.inference_url}/predictions/{MODEL}"
        load = [asyncio.create_task(client.post(url, content=body)) for _ in range(16)]
        os.kill(victim, signal.SIGKILL)
        await asyncio.gather(*load, return_exceptions=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pids = {w["pid"] for w in torchserve.ready_workers(MODEL)}
        if len(pids) == len(workers) and victim not in pids:
            break
        await asyncio.sleep(1)
    else:
        pytest.fail(f"worker {victim} was not replaced")
    assert _predict(torchserve, body).status_code == 200


def test_repo_config_serves_from_repo_root_and_stops_cleanly(tmp_path, model_store, manifest):
    """`torchserve --start --ts-config config.properties` from the repo root, as documented."""
    store = REPO_ROOT / "archives"
    missing = [s.file_name for s in manifest if not (store / s.file_name).exists()]
    for name in missing:
        shutil.copy(model_store / name, store / name)
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    before = _serving_pids()
    server = TorchServe(workdir=REPO_ROOT, model_store=store, ports=(8080, 8081, 8082))
    try:
        # The frontend outlives this call and writes to its stdout: a file, not a pipe.
        with open(tmp_path / "torchserve.out", "wb") as log:
            subprocess.run([tool_path("torchserve"), "--start", "--ts-config", "config.properties",
                            "--ncs"],
                           cwd=REPO_ROOT, env=env, check=True, stdout=log, stderr=log)
        server.wait_ready([s.name for s in manifest], timeout_s=180)
        ping = httpx.get("http://127.0.0.1:8080/ping", headers=_auth(server), timeout=5)
        assert ping.json()["status"] == "Healthy"
    finally:
        subprocess.run([tool_path("torchserve"), "--stop", "--foreground"], cwd=REPO_ROOT, env=env,
                       check=False, capture_output=True)
        for name in missing:
            (store / name).unlink()
    assert _serving_pids() - before == set()
    assert not (REPO_ROOT / "key_file.json").exists()
