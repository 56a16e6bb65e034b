"""``vigil embed``: training data for the fusion head, embedded by the serving archives.

Reads ``POSTS/posts.jsonl`` and writes one JSON object per post (``post_id``, ``label`` and
an embedding or null per modality) as JSON Lines, which ``vigil train vrt --table`` reads.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from orchestrator.catalogue import Catalogue
from orchestrator.config import load_config
from orchestrator.errors import ConfigError
from orchestrator.serving import Extractors, TorchServeClient


def read_posts(folder: Path) -> list[dict[str, Any]]:
    """posts.jsonl in ``folder``; each post names its media relative to the folder."""
    posts = []
    with open(folder / "posts.jsonl", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            post = json.loads(line)
            if "post_id" not in post:
                raise ValueError(f"posts.jsonl line {number}: no post_id")
            posts.append(post)
    return posts


async def embed_folder(folder: Path, extractors: Extractors,
                       concurrency: int) -> list[dict[str, Any]]:
    """Every post of ``folder`` embedded, in file order, with a progress bar."""
    slots = asyncio.Semaphore(concurrency)
    posts = read_posts(folder)
    progress = tqdm(total=len(posts), desc="embedding posts", unit="post")

    async def one(post: dict[str, Any]) -> dict[str, Any]:
        async with slots:
            media_name = post.get("video") or post.get("image")
            media = (folder / media_name).read_bytes() if media_name else None
            kind = "video" if post.get("video") else "image"
            vectors = await extractors.embed(media, kind, post.get("text"))
            progress.update()
            return {"post_id": post["post_id"], "label": post.get("label"), **vectors}

    try:
        return await asyncio.gather(*(one(post) for post in posts))
    finally:
        progress.close()


def main(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config, pipeline="vrt")
        catalogue = Catalogue.load(config.torchserve.catalogue)
    except ConfigError as exc:
        raise SystemExit(f"vigil embed: {exc}") from exc

    async def run() -> list[dict[str, Any]]:
        async with TorchServeClient(config.torchserve) as client:
            extractors = Extractors.from_catalogue(client.predict, catalogue,
                                                   config.vrt.fusion_model)
            return await embed_folder(Path(args.posts), extractors, args.concurrency)

    rows = asyncio.run(run())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    modalities = [m for m in rows[0] if m not in ("post_id", "label")] if rows else []
    present = {m: sum(row[m] is not None for row in rows) for m in modalities}
    print(f"{out}: {len(rows)} posts; with " + ", ".join(f"{m} {n}" for m, n in present.items()))
    return 0
