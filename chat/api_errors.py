"""The one error shape of every JSON endpoint: ``{"code": ..., "detail": ...}``.

DRF answers its own errors in several shapes (``{"detail": ...}`` for authentication,
permission, throttling and 404; ``{"field": [messages]}`` for validation). The project's
exception handler rewrites every one of them to a machine-readable ``code`` and a readable
``detail``; a validation error also keeps its per-field messages under ``fields``. Status codes
and headers (``Retry-After``, ``WWW-Authenticate``) stay DRF's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler


def first_error_message(errors: Any, path: str = "") -> str:
    """``"field: message"`` of the first message in DRF's nested error structure."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            return first_error_message(value, f"{path}.{key}" if path else str(key))
    if isinstance(errors, list) and errors:
        return first_error_message(errors[0], path)
    message = str(errors)
    return f"{path}: {message}" if path and path != "non_field_errors" else message


def error_payload(exc: APIException) -> dict[str, Any]:
    if isinstance(exc, ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return {"code": "invalid", "detail": first_error_message(fields), "fields": fields}
    codes = exc.get_codes()
    code = codes if isinstance(codes, str) else exc.default_code
    return {"code": code, "detail": str(exc.detail)}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (status, headers, 404 and permission mapping), with the project's body."""
    response = exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's own handling applies
    if isinstance(exc, APIException):
        response.data = error_payload(exc)
    else:  # Http404 and PermissionDenied, which DRF maps to these two
        response.data = {
            "code": "not_found" if response.status_code == 404 else "permission_denied",
            "detail": str(response.data.get("detail", "")),
        }
    return response


class ApiNotFoundMiddleware:
    """A path under ``/api/`` that no route matches is a JSON 404 too, not Django's HTML page."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code == 404
            and request.path.startswith("/api/")
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return JsonResponse({"code": "not_found", "detail": "No API endpoint at this path."}, status=404)
        return response
