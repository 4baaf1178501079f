"""URL routes of the labeling app (included by companion/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "labeling"
urlpatterns: list[URLPattern | URLResolver] = []
