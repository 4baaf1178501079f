"""The Content-Security-Policy of every page, with a narrow, named exception per path prefix.

The policy itself is ``CONTENT_SECURITY_POLICY`` in the settings (django-csp). A page that still
runs an inline ``<script>`` gets only the directives it needs added, on its own path prefix
(``CSP_PATH_UPDATES``), so that the rest of the site keeps the strict policy.
"""

from __future__ import annotations

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.http import HttpRequest
from django.http.response import HttpResponseBase


class PathScopedCSPMiddleware(CSPMiddleware):
    """django-csp's middleware plus ``CSP_PATH_UPDATES``: ``{path prefix: directives to add}``."""

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if parts.update is None:
            for prefix, update in getattr(settings, "CSP_PATH_UPDATES", {}).items():
                if request.path.startswith(prefix):
                    parts.update = update
                    break
        return parts
