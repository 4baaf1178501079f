"""Who is on the other end of a WebSocket: a token (apps) or the session cookie (the browser page).

``TokenOrSessionAuthMiddleware`` sets ``scope["user"]``:

* a token in the query string (``?token=<key>``) or an ``Authorization: Token <key>`` header
  wins; an unknown token makes the user anonymous (never silently falls back to the cookie);
* otherwise Django's session cookie, through Channels' ``AuthMiddlewareStack``.

The consumer closes anonymous sockets with 4401.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.contrib.auth.models import AnonymousUser, User
from rest_framework.authtoken.models import Token

from chat.db_threads import in_db_thread

Scope = dict[str, Any]


def token_from_scope(scope: Scope) -> str | None:
    """The API token the client presented, or ``None`` if it presented none."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, key = value.decode("latin1").partition(" ")
            if scheme.lower() == "token" and key.strip():
                return key.strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin1"))
    tokens = query.get("token")
    return tokens[0] if tokens else None


@in_db_thread
def user_for_token(key: str) -> User | AnonymousUser:
    token = Token.objects.select_related("user").filter(key=key).first()
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenOrSessionAuthMiddleware:
    """ASGI middleware: token auth when a token is presented, session auth otherwise."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.session_auth = AuthMiddlewareStack(inner)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        key = token_from_scope(scope)
        if key is None:
            return await self.session_auth(scope, receive, send)
        return await self.inner(dict(scope, user=await user_for_token(key)), receive, send)


class AllowedHostsOrNoOriginValidator(OriginValidator):
    """Like Channels' ``AllowedHostsOriginValidator``, but admits a socket without an Origin header.

    Origin checks stop a foreign web page from riding the browser's session cookie; browsers
    always send Origin, so they are still checked. Native apps and scripts (token auth) send
    none, and Channels' stock validator would turn every one of them away.
    """

    def __init__(self, application: Any) -> None:
        allowed = AllowedHostsOriginValidator(application)
        super().__init__(application, allowed.allowed_origins)

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)
