"""Sign-in and CSRF: the console's token, once, makes a session cookie (HttpOnly,
SameSite=Strict); every page needs the cookie, and every action is a POST that carries the
session's CSRF token and comes from the console's own origin."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request

COOKIE = "tandem_console"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
# Sessions held at once: the oldest is forgotten beyond this (a person signs in again).
MAX_SESSIONS = 256


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str


class Sessions:
    """Signed-in browsers, in memory: a daemon that restarts asks them to sign in again."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()
        self._sessions: dict[str, Session] = {}

    def sign_in(self, token: str) -> Session | None:
        """A new session for the right token (compared in constant time); else None."""
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        self._sessions[session.id] = session
        while len(self._sessions) > MAX_SESSIONS:
            del self._sessions[next(iter(self._sessions))]
        return session

    def of(self, request: Request) -> Session | None:
        return self._sessions.get(request.cookies.get(COOKIE, ""))


def same_origin(request: Request) -> bool:
    """The POST comes from a page of this console: its Origin names the host it was sent
    to. A browser always sends Origin with a POST; a request without one is refused."""
    origin = request.headers.get("origin", "")
    host = request.headers.get("host", "")
    return bool(host) and origin == f"{request.url.scheme}://{host}"


async def csrf_ok(request: Request, session: Session) -> bool:
    """The session's CSRF token, in the X-CSRF-Token header (htmx) or the form's field."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        form = await request.form()
        value = form.get(CSRF_FIELD, "")
        sent = value if isinstance(value, str) else ""
    return hmac.compare_digest(sent.encode(), session.csrf.encode())
