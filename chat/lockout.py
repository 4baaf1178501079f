"""What a locked-out login gets (django-axes' ``AXES_LOCKOUT_CALLABLE``): 429 and a clear message.

The API answers in its one error shape; the login page gets a plain page saying the same.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend  # type: ignore[import-untyped]  # no types shipped
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    cool_off = settings.AXES_COOLOFF_TIME  # a timedelta (companion/settings.py), or None: no expiry
    seconds = int(cool_off.total_seconds()) if cool_off is not None else None
    wait = (
        f"Try again in {seconds // 60} minutes."
        if seconds is not None
        else "Ask an administrator to unlock it."
    )
    detail = f"Too many failed logins for this account or address. {wait}"
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse({"code": "locked_out", "detail": detail}, status=429)
    else:
        response = HttpResponse(detail, content_type="text/plain; charset=utf-8", status=429)
    if seconds is not None:
        response["Retry-After"] = str(seconds)
    return response


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' backend, for logins that come with a request (the login page, the token API).

    A call of ``authenticate()`` without one (a management command, a shell, a test) has no
    address to count and no client to lock out: the stock backend raises then; this one steps aside.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, *args, **kwargs)
