"""The operator's endpoints: ``/healthz``, ``/readyz`` and ``/metrics``.

Plain Django views (no DRF: no session, no throttle, no authentication classes to run). The
health endpoints are open and say nothing secret; ``/metrics`` wants ``METRICS_TOKEN`` as a
bearer token and answers 404 while no token is configured (disabled, not open).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST

from companion.ops import health, metrics

View = Callable[[HttpRequest], HttpResponse]


def require_GET(view: View) -> View:
    """GET (and HEAD) only; anything else gets 405 with the project's JSON error shape."""

    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse(
                {"code": "method_not_allowed", "detail": f"{request.method} is not allowed here; use GET."},
                status=405,
            )
            response["Allow"] = "GET, HEAD"
            return response
        return view(request)

    return wrapper


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else (a dead database is readiness's business)."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: PostgreSQL and Redis answer and every migration is applied; 503 otherwise."""
    report = health.readiness(generator=settings.READYZ_CHECK_GENERATOR)
    return JsonResponse(report, status=200 if report["status"] == "ready" else 503)


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus scrape, for ``Authorization: Bearer <METRICS_TOKEN>`` only."""
    token = settings.METRICS_TOKEN
    if not token:
        return JsonResponse(
            {"code": "metrics_disabled", "detail": "Set METRICS_TOKEN to enable /metrics."}, status=404
        )
    supplied = request.headers.get("Authorization", "")
    scheme, _, value = supplied.partition(" ")
    if not supplied:
        response = JsonResponse(
            {"code": "not_authenticated", "detail": "Send Authorization: Bearer <METRICS_TOKEN>."},
            status=401,
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.encode(), token.encode()):
        return JsonResponse(
            {"code": "permission_denied", "detail": "The metrics token is wrong."}, status=403
        )
    return HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
