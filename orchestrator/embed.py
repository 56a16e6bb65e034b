"""``vigil embed``: training data for the fusion head, embedded by the serving archives."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from orchestrator.config import ConfigError, load_config
from modelzoo.embeddings_table import COLUMNS, MODALITIES, write_table
from orchestrator.extractors import Extractors
from orchestrator.torchserve import TorchServeClient


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


async def embed_folder(folder: Path, extractors: Extractors, concurrency: int) -> list[dict[str, Any]]:
    slots = asyncio.Semaphore(concurrency)
    posts = read_posts(folder)
    progress = tqdm(total=len(posts), desc="embedding posts", unit="post")

    async def one(post: dict[str, Any]) -> dict[str, Any]:
        async with slots:
            media_name = post.get("video") or post.get("image")
            media = (folder / media_name).read_bytes() if media_name else None
            vectors = await extractors.embed(media, bool(post.get("video")), post.get("text"))
            progress.update()
            return {"post_id": post["post_id"], "label": post.get("label"), **vectors}

    try:
        return await asyncio.gather(*(one(post) for post in posts))
    finally:
        progress.close()


def main(args: argparse.Namespace) -> int:
    import pandas as pd

    try:
        config = load_config(args.config, pipeline="vrt")
    except ConfigError as exc:
        raise SystemExit(f"vigil embed: {exc}") from exc

    async def run() -> list[dict[str, Any]]:
        async with TorchServeClient(config.torchserve) as client:
            extractors = Extractors(client.predict, config.vrt)
            return await embed_folder(Path(args.posts), extractors, args.concurrency)

    rows = asyncio.run(run())
    out = Path(args.out)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    write_table(table, out)
    present = {m: sum(v is not None for v in table[m]) for m in MODALITIES}
    print(f"{out}: {len(table)} posts; with " + ", ".join(f"{m} {n}" for m, n in present.items()))
    return 0
