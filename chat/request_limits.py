"""A body over the upload limit is a JSON ``413 {"code": "body_too_large", ...}``, never an HTML page.

Django refuses a body over ``DATA_UPLOAD_MAX_MEMORY_SIZE`` with ``RequestDataTooBig``, which its
handler turns into an HTML 400. The declared ``Content-Length`` is checked before any view reads
the body; a body that grows past the limit while being read is caught the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse


def body_too_large_response(length: int | None) -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    size = f"has {length} bytes" if length is not None else "is too large"
    return JsonResponse(
        {"code": "body_too_large", "detail": f"The request body {size}; the limit is {limit}."}, status=413
    )


class BodySizeLimitMiddleware:
    """Answers an oversized request body with JSON 413 before the body is read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return body_too_large_response(length)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, RequestDataTooBig):
            return body_too_large_response(None)
        return None
