"""The browser chat page: a template and plain JavaScript that use the REST API and socket like an app."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@login_required
@ensure_csrf_cookie
def chat_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "chat/chat.html",
        {"max_length": settings.CHAT_MESSAGE_MAX_LENGTH},
    )
