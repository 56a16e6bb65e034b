"""TorchServe alone: the daemon's own TorchServe client sends the same clips the same way,
with no broker, parsing, batching, database or verdict topic around it.

The full path's clips/s over this one is what Vigil's part of the path costs: 1.0 would
mean it costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from tqdm import tqdm

from benchmarks import stack
from orchestrator.catalogue import Catalogue, ModelEntry
from orchestrator.config import TorchServeConfig
from orchestrator.serving import TorchServeClient

BATCH = 8


async def _send(config: TorchServeConfig, model: ModelEntry, bodies: Sequence[bytes],
                count: int, *, batch_requests: bool, in_flight: int) -> None:
    async with TorchServeClient(config) as client:
        slots = asyncio.Semaphore(max(1, in_flight // BATCH))
        with tqdm(total=count, desc="TorchServe alone", unit="clip", leave=False) as progress:

            async def batch(start: int) -> None:
                async with slots:
                    end = min(count, start + BATCH)
                    group = [bodies[i % len(bodies)] for i in range(start, end)]
                    if batch_requests:
                        await client.predict_batch(model, group)
                    else:
                        await asyncio.gather(*(client.predict(model, body) for body in group))
                    progress.update(len(group))

            await asyncio.gather(*(batch(start) for start in range(0, count, BATCH)))


def run(path: stack.Served, model_name: str, bodies: Sequence[bytes], count: int, *,
        batch_requests: bool, in_flight: int) -> dict:
    """Send ``count`` clips (``bodies`` over and over) in batches of 8, ``in_flight`` clips
    at most at a time as in the daemon; clips/s and TorchServe's CPU per clip."""
    config = TorchServeConfig(url=path.server.inference_url, key_file=str(path.server.key_file))
    model = Catalogue.load(path.server.model_store / "catalogue.json").live(model_name)
    server = stack.process_tree(path.server.process.pid)
    cpu_before, started = stack.cpu_seconds(server), time.monotonic()
    asyncio.run(_send(config, model, bodies, count, batch_requests=batch_requests,
                      in_flight=in_flight))
    wall = time.monotonic() - started
    return {"clips": count, "wall_s": wall, "clips_per_s": count / wall,
            "server_cpu_ms_per_clip": 1000 * (stack.cpu_seconds(server) - cpu_before) / count}
