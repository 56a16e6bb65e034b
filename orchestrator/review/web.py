"""The review page's HTTP side: aiohttp routes, Jinja2 templates (autoescaped: every text
from a post or a clip is rendered as text), and the headers every response carries.

Every request is a signed-in moderator's (401 otherwise) and every POST carries the CSRF
token (403 otherwise). The Content-Security-Policy allows scripts, styles and media from
this origin only and no inline script; media are fetched by the daemon through the same
allow-list and address rules as the pipelines (:class:`~orchestrator.serving.MediaFetcher`),
never by the browser from the post's own URL.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2
from aiohttp import web

from orchestrator.config import ReviewConfig
from orchestrator.errors import VigilError
from orchestrator.metrics import Metrics
from orchestrator.review.auth import COOKIE, CSRF_HEADER, Authenticator
from orchestrator.review.claims import Claims
from orchestrator.review.decisions import CATEGORIES, Decision, PendingDecisions
from orchestrator.review.items import QUEUES, ReviewItems
from orchestrator.serving import MediaFetcher
from orchestrator.triage import HistoryRepository

HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; media-src 'self'; connect-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
OPEN_PATHS = ("/signin", "/static/")
# Media types by their first bytes: the browser is told what it gets, never left to guess.
MAGIC = ((b"RIFF", "audio/wav"), (b"OggS", "audio/ogg"), (b"fLaC", "audio/flac"),
         (b"ID3", "audio/mpeg"), (b"\xff\xfb", "audio/mpeg"), (b"\xff\xf3", "audio/mpeg"),
         (b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG", "image/png"), (b"GIF8", "image/gif"),
         (b"\x1aE\xdf\xa3", "video/webm"))
MODERATOR = web.RequestKey("moderator", str)


@dataclass(frozen=True)
class Services:
    config: ReviewConfig
    auth: Authenticator
    items: ReviewItems
    claims: Claims
    decisions: PendingDecisions
    history: HistoryRepository
    fetcher: MediaFetcher
    metrics: Metrics


def media_type(body: bytes) -> str:
    for magic, kind in MAGIC:
        if body.startswith(magic):
            return kind
    if body[4:8] == b"ftyp":
        return "video/mp4"
    return "application/octet-stream"


def make_app(services: Services) -> web.Application:
    templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                   autoescape=True, undefined=jinja2.StrictUndefined)
    app = web.Application(middlewares=[_security(services.auth)])
    routes = Routes(services, templates)
    app.router.add_get("/signin", routes.signin_page)
    app.router.add_post("/signin", routes.signin)
    app.router.add_post("/signout", routes.signout)
    app.router.add_get("/", routes.queues)
    app.router.add_get("/queue/{queue}", routes.queue)
    app.router.add_get("/next/{queue}", routes.next_item)
    app.router.add_get("/item/{queue}/{kind}/{item_id}", routes.item)
    app.router.add_post("/decide", routes.decide)
    app.router.add_post("/undo", routes.undo)
    app.router.add_get("/media/{kind}/{item_id}", routes.media)
    app.router.add_static("/static/", HERE / "static")
    return app


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _security(auth: Authenticator) -> Callable:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await _guarded(auth, request, handler)
        except web.HTTPException as error:  # refusals and redirects carry them too
            error.headers.update(SECURITY_HEADERS)
            raise
        response.headers.update(SECURITY_HEADERS)
        return response
    return middleware


async def _guarded(auth: Authenticator, request: web.Request,
                   handler: Handler) -> web.StreamResponse:
    if request.path.startswith(OPEN_PATHS):
        return await handler(request)
    moderator = auth.moderator(request)
    if moderator is None:
        raise web.HTTPUnauthorized(text="sign in first: /signin", headers={
            "WWW-Authenticate": 'Bearer realm="vigil-review"'})
    if request.method == "POST":
        token = request.headers.get(CSRF_HEADER, "")
        if not token and request.content_type == "application/x-www-form-urlencoded":
            token = str((await request.post()).get("csrf", ""))
        if not auth.csrf_valid(moderator, token):
            raise web.HTTPForbidden(text="missing or wrong CSRF token")
    request[MODERATOR] = moderator
    return await handler(request)


class Routes:
    def __init__(self, services: Services, templates: jinja2.Environment) -> None:
        self.s = services
        self.templates = templates
        self._decided = services.metrics.review_decisions

    def _page(self, template: str, request: web.Request | None = None, *, status: int = 200,
              **context: object) -> web.Response:
        moderator = request[MODERATOR] if request is not None and MODERATOR in request else None
        csrf = self.s.auth.csrf_token(moderator) if moderator else ""
        html = self.templates.get_template(template).render(
            moderator=moderator, csrf=csrf, queues=QUEUES, categories=CATEGORIES,
            undo_s=self.s.config.undo_s, **context)
        return web.Response(text=html, content_type="text/html", status=status)

    async def signin_page(self, request: web.Request) -> web.Response:
        return self._page("signin.html", error=None)

    async def signin(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", ""))
        if self.s.auth.moderator_of_token(token) is None:
            return self._page("signin.html", status=401, error="unknown token")
        response = web.HTTPSeeOther("/")
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/",
                            secure=request.secure)
        raise response

    async def signout(self, request: web.Request) -> web.Response:
        response = web.HTTPSeeOther("/signin")
        response.del_cookie(COOKIE, path="/")
        raise response

    async def queues(self, request: web.Request) -> web.Response:
        counts = await self.s.items.counts(request[MODERATOR], time.time())
        return self._page("queues.html", request, counts=counts)

    def _queue_name(self, request: web.Request) -> str:
        name = request.match_info["queue"]
        if name not in QUEUES:
            raise web.HTTPNotFound(text="no such queue")
        return name

    async def queue(self, request: web.Request) -> web.Response:
        name = self._queue_name(request)
        entries = await self.s.items.queue(name, request[MODERATOR], time.time())
        return self._page("queue.html", request, queue=name, entries=entries)

    async def next_item(self, request: web.Request) -> web.StreamResponse:
        """The oldest item of the queue this moderator can claim: its page, or its fragment
        for the page's script (204 when the queue is empty)."""
        name, moderator = self._queue_name(request), request[MODERATOR]
        fragment = request.query.get("fragment") == "1"
        for entry in await self.s.items.queue(name, moderator, time.time()):
            if await self.s.claims.claim(entry.kind, entry.item_id, moderator, time.time()):
                if fragment:
                    return await self._item_page(request, name, entry.kind, entry.item_id,
                                                 fragment=True)
                raise web.HTTPSeeOther(f"/item/{name}/{entry.kind}/{entry.item_id}")
        if fragment:
            return web.Response(status=204)
        raise web.HTTPSeeOther(f"/queue/{name}")

    async def item(self, request: web.Request) -> web.Response:
        name, moderator = self._queue_name(request), request[MODERATOR]
        kind, item_id = request.match_info["kind"], request.match_info["item_id"]
        if not await self.s.claims.claim(kind, item_id, moderator, time.time()):
            return self._page("claimed.html", request, status=409, queue=name)
        return await self._item_page(request, name, kind, item_id,
                                     fragment=request.query.get("fragment") == "1")

    async def _item_page(self, request: web.Request, queue: str, kind: str, item_id: str, *,
                         fragment: bool) -> web.Response:
        item = await self.s.items.item(kind, item_id)
        if item is None:
            raise web.HTTPNotFound(text="no such item")
        history = earlier = None
        if item.user_id and kind == "post":
            history = await self.s.history.get(item.user_id)
            earlier = await self.s.items.user_decisions(item.user_id)
        return self._page("_item.html" if fragment else "item.html", request, queue=queue,
                          item=item, history=history, earlier=earlier or [])

    async def _json(self, request: web.Request) -> dict:
        try:
            body = await request.json()
        except ValueError as error:
            raise web.HTTPBadRequest(text="a JSON body is needed") from error
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(text="a JSON object is needed")
        return body

    async def decide(self, request: web.Request) -> web.Response:
        body, moderator = await self._json(request), request[MODERATOR]
        try:
            decision = Decision(str(body.get("kind")), str(body.get("item_id")), moderator,
                                str(body.get("decision")), body.get("category") or None)
        except ValueError as error:
            raise web.HTTPBadRequest(text=str(error)) from error
        if not await self.s.claims.claim(decision.kind, decision.item_id, moderator,
                                         time.time()):
            raise web.HTTPConflict(text="another moderator holds this item")
        until = await self.s.decisions.decide(decision, time.time())
        await self.s.claims.release(decision.kind, decision.item_id, moderator)
        self._decided.labels(decision.decision).inc()
        return web.json_response({"undo_until": until})

    async def undo(self, request: web.Request) -> web.Response:
        body, moderator = await self._json(request), request[MODERATOR]
        kind, item_id = str(body.get("kind")), str(body.get("item_id"))
        undone = await self.s.decisions.undo(kind, item_id, moderator)
        if undone:
            await self.s.claims.claim(kind, item_id, moderator, time.time())
        return web.json_response({"undone": undone})

    async def media(self, request: web.Request) -> web.Response:
        item = await self.s.items.item(request.match_info["kind"], request.match_info["item_id"])
        if item is None or not item.media_url:
            raise web.HTTPNotFound(text="no media kept for this item")
        try:
            body = await self.s.fetcher.fetch(item.media_url)
        except VigilError as error:
            raise web.HTTPBadGateway(text=f"media: {error.reason}") from error
        return web.Response(body=body, content_type=media_type(body),
                            headers={"Content-Disposition": "inline"})
