"""Who is asking: every request is a moderator's or is refused.

Two modes, one per deployment. Behind an identity-aware proxy (oauth2-proxy with OIDC) the
proxy signs the moderator in and passes their identity in ``review.trusted_header``; the
NetworkPolicy admits only the proxy to this port, which is what makes the header
trustworthy. In local mode (the demo, tests) each moderator has a token (a Secret); the
sign-in page sets it as an HttpOnly, SameSite=Strict cookie. Every state-changing request
carries a CSRF token: an HMAC of the moderator's id under ``review.session_key``.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from aiohttp import web

from orchestrator.messages import valid_identifier

COOKIE = "vigil_review"
CSRF_HEADER = "X-CSRF-Token"


class Authenticator:
    def __init__(self, tokens: Mapping[str, str], trusted_header: str, session_key: str) -> None:
        self._moderator_of = {str(token): str(who) for who, token in tokens.items()}
        self.trusted_header = trusted_header
        self._key = session_key.encode()

    def moderator_of_token(self, token: str) -> str | None:
        """The moderator ``token`` belongs to (compared in constant time), or None."""
        found = None
        for known, who in self._moderator_of.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = who
        return found

    def moderator(self, request: web.Request) -> str | None:
        """The moderator making ``request``, or None. A proxy's header must hold a valid id
        (it becomes every decision's ``moderator_id``, which the quality daemon checks)."""
        if self.trusted_header:
            who = request.headers.get(self.trusted_header, "")
            return who if valid_identifier(who) else None
        token = request.cookies.get(COOKIE, "")
        bearer = request.headers.get("Authorization", "")
        if bearer.startswith("Bearer "):
            token = bearer.removeprefix("Bearer ")
        return self.moderator_of_token(token) if token else None

    def csrf_token(self, moderator: str) -> str:
        return hmac.new(self._key, moderator.encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, moderator: str, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(moderator), token)
