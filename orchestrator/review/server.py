"""``vigil review``: the review page's lifecycle, with the daemons' conventions (one config,
``/metrics`` on its own port, SIGTERM drains): the database, a producer for
``review.decisions``, the media fetcher, the sender of due decisions every second, and the
web server."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import time

from aiohttp import web

from orchestrator.config import AppConfig, load_config
from orchestrator.db import open_store
from orchestrator.errors import VigilError
from orchestrator.flow import Periodic, stop_on_signals
from orchestrator.kafka import EventProducer
from orchestrator.metrics import Metrics
from orchestrator.review.auth import Authenticator
from orchestrator.review.claims import Claims
from orchestrator.review.decisions import PendingDecisions
from orchestrator.review.items import ReviewItems
from orchestrator.review.web import Services, make_app
from orchestrator.serving import MediaFetcher
from orchestrator.triage import HistoryRepository

logger = logging.getLogger(__name__)
SEND_EVERY_S = 1.0
FLOORS_EVERY_S = 60.0


async def run_review(config: AppConfig, *, stop: asyncio.Event | None = None,
                     metrics: Metrics | None = None) -> None:
    """Serve the review page until ``stop`` is set (or SIGTERM/SIGINT)."""
    review = config.review
    review.require_sign_in()
    metrics = metrics or Metrics()
    stop = stop_on_signals(stop)
    metrics.serve(config.runtime.metrics_port, config.runtime.metrics_addr)
    async with contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(open_store(config.database_url))
        producer = await stack.enter_async_context(
            EventProducer(config.kafka.producer_settings()))
        fetcher = await stack.enter_async_context(MediaFetcher(config.media))
        decisions = PendingDecisions(store, producer, config.kafka.output_topic, review.undo_s)

        async def send_due() -> None:
            await decisions.send_due(time.time())

        await stack.enter_async_context(Periodic("review-sender", SEND_EVERY_S, send_due))
        items = ReviewItems(store, review)

        async def advance_floors() -> None:
            await items.advance_floors(time.time())

        await advance_floors()
        await stack.enter_async_context(Periodic("review-floors", FLOORS_EVERY_S,
                                                 advance_floors))
        services = Services(
            review, Authenticator(review.tokens, review.trusted_header, review.session_key),
            items, Claims(store, review.claim_s), decisions,
            HistoryRepository(store, window_days=config.triage.history_days,
                              ttl_s=config.triage.cache_ttl_s), fetcher, metrics)
        runner = web.AppRunner(make_app(services), access_log=None)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, review.addr, review.port).start()
        logger.info("review page on http://%s:%d/", review.addr, review.port)
        await stop.wait()
        logger.info("stopping: sending due decisions")
        await send_due()  # what is due now goes before the producer flushes


def main(args: argparse.Namespace) -> int:
    """Run the review page until SIGTERM/SIGINT; exits non-zero with the reason when a
    start-up check fails."""
    try:
        asyncio.run(run_review(load_config(args.config, pipeline="review")))
    except VigilError as exc:
        raise SystemExit(f"vigil review: {exc}") from exc
    return 0
