"""URL routes of the chat app (included by companion/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "chat"
urlpatterns: list[URLPattern | URLResolver] = []
