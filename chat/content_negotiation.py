"""The API answers in JSON whatever the client's ``Accept`` header or ``?format=`` asks for.

DRF's defaults served its browsable HTML pages to a browser's ``Accept: text/html`` (or to
``?format=api``), a 406 to ``Accept: application/xml`` and a 404 to an unknown ``?format=``: three
answers the OpenAPI schema does not describe, for a request that was otherwise fine. The project
keeps only the JSON renderer (``REST_FRAMEWORK`` in ``companion/settings.py``), and a request
that names nothing a view can render gets that view's first renderer instead of an error, as
RFC 9110 (12.5.1) allows: "disregard the header field". Views with several renderers (the
OpenAPI schema's YAML and JSON) still honour what the client picks among them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class FirstRendererFallback(DefaultContentNegotiation):
    """DRF's negotiation, falling back to the view's first renderer instead of a 406 or a 404."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, Any]:
        candidates = list(renderers)
        try:
            return super().select_renderer(request, candidates, format_suffix)
        except (NotAcceptable, Http404):
            return candidates[0], candidates[0].media_type
