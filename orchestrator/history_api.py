"""``GET /users/{user_id}/history`` over HTTP (aiohttp), for services other than the triage."""

from __future__ import annotations

import logging

from aiohttp import web

from orchestrator.history import HistoryRepository
from orchestrator.stores import StoreError

logger = logging.getLogger(__name__)
MAX_USER_ID = 200
REPOSITORY = web.AppKey("repository", HistoryRepository)


async def _history(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    if not user_id or len(user_id) > MAX_USER_ID:
        raise web.HTTPBadRequest(text=f"user id must be 1..{MAX_USER_ID} characters")
    try:
        history = await request.app[REPOSITORY].get(user_id)
    except StoreError as exc:
        logger.warning("history for %s failed: %s", user_id, exc)
        raise web.HTTPServiceUnavailable(text="history store unavailable") from exc
    return web.json_response(history.as_json())


def make_app(repository: HistoryRepository) -> web.Application:
    app = web.Application()
    app[REPOSITORY] = repository
    app.router.add_get("/users/{user_id}/history", _history)
    return app


async def start(repository: HistoryRepository, addr: str, port: int) -> web.AppRunner:
    """Serve the endpoint on ``addr:port`` from this event loop; ``cleanup()`` stops it."""
    runner = web.AppRunner(make_app(repository), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, addr, port).start()
    logger.info("user history on http://%s:%d/users/{id}/history", addr, port)
    return runner
