"""``GET /users/{user_id}/history`` over HTTP (aiohttp), for services other than the triage.

A user's post and discard counts are personal data: every request must carry
``Authorization: Bearer <triage.history_token>`` (a Kubernetes Secret), compared in
constant time; anything else gets 401.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from orchestrator.errors import StoreError, StoreUnavailable
from orchestrator.messages import MAX_ID_CHARS, valid_identifier
from orchestrator.triage.history import HistoryRepository

logger = logging.getLogger(__name__)
REPOSITORY = web.AppKey("repository", HistoryRepository)
TOKEN = web.AppKey("token", bytes)


@web.middleware
async def _require_token(request: web.Request, handler):
    given = request.headers.get("Authorization", "")
    expected = b"Bearer " + request.app[TOKEN]
    if not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
        raise web.HTTPUnauthorized(text="a bearer token is required",
                                   headers={"WWW-Authenticate": 'Bearer realm="vigil-history"'})
    return await handler(request)


async def _history(request: web.Request) -> web.Response:
    user_id = request.match_info["user_id"]
    if not valid_identifier(user_id):  # the rule the pipelines store ids under
        raise web.HTTPBadRequest(text=f"user id must be 1..{MAX_ID_CHARS} printable "
                                      "characters")
    try:
        history = await request.app[REPOSITORY].get(user_id)
    except (StoreError, StoreUnavailable) as exc:
        logger.warning("history for a user failed: %s", exc)
        raise web.HTTPServiceUnavailable(text="history store unavailable") from exc
    return web.json_response(history.as_json())


def make_app(repository: HistoryRepository, token: str) -> web.Application:
    app = web.Application(middlewares=[_require_token])
    app[REPOSITORY] = repository
    app[TOKEN] = token.encode()
    app.router.add_get("/users/{user_id}/history", _history)
    return app


async def start(repository: HistoryRepository, addr: str, port: int,
                token: str) -> web.AppRunner:
    """Serve the endpoint on ``addr:port`` from this event loop; ``cleanup()`` stops it."""
    runner = web.AppRunner(make_app(repository, token), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, addr, port).start()
    logger.info("user history on http://%s:%d/users/{id}/history (bearer token required)",
                addr, port)
    return runner
