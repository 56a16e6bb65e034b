"""``vigil health``: the container probes. TorchServe's ``/ping`` needs the inference key
(token auth stays on), so a plain HTTP probe cannot ask it; this command can."""

from __future__ import annotations

import argparse
from pathlib import Path

import httpx

from orchestrator.errors import AuthError
from orchestrator.torchserve import read_inference_key


def check_torchserve(url: str, key_file: Path, timeout_s: float = 5.0) -> str:
    """``"ok"`` when TorchServe answers Healthy, else what is wrong."""
    try:
        key = read_inference_key(key_file)
        response = httpx.get(f"{url}/ping", headers={"Authorization": f"Bearer {key}"},
                             timeout=timeout_s)
    except (AuthError, httpx.HTTPError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.status_code == 200 and response.json().get("status") == "Healthy":
        return "ok"
    return f"HTTP {response.status_code}: {response.text[:200]}"


def check_daemon(port: int, timeout_s: float = 5.0) -> str:
    """``"ok"`` when the daemon's metrics endpoint answers."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"


def main(args: argparse.Namespace) -> int:
    if args.target == "torchserve":
        outcome = check_torchserve(args.url, Path(args.key_file))
    else:
        outcome = check_daemon(args.port)
    print(outcome)
    return 0 if outcome == "ok" else 1
