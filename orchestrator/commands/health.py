"""``vigil health``: the container probes. TorchServe's ``/ping`` needs the inference key
(token auth stays on), so a plain HTTP probe cannot ask it; this command can."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from pathlib import Path

from orchestrator.errors import AuthError
from orchestrator.serving import read_inference_key


def _get(url: str, headers: dict[str, str], timeout_s: float) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_torchserve(url: str, key_file: Path, timeout_s: float = 5.0) -> str:
    """``"ok"`` when TorchServe answers Healthy, else what is wrong."""
    try:
        key = read_inference_key(key_file)
        status, body = _get(f"{url}/ping", {"Authorization": f"Bearer {key}"}, timeout_s)
    except (AuthError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        healthy = status == 200 and json.loads(body).get("status") == "Healthy"
    except ValueError:
        healthy = False
    return "ok" if healthy else f"HTTP {status}: {body[:200].decode(errors='replace')}"


def check_daemon(port: int, timeout_s: float = 5.0) -> str:
    """``"ok"`` when the daemon's metrics endpoint answers."""
    try:
        status, _ = _get(f"http://127.0.0.1:{port}/metrics", {}, timeout_s)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    return "ok" if status == 200 else f"HTTP {status}"


def main(args: argparse.Namespace) -> int:
    if args.target == "torchserve":
        outcome = check_torchserve(args.url, Path(args.key_file))
    else:
        outcome = check_daemon(args.port)
    print(outcome)
    return 0 if outcome == "ok" else 1
