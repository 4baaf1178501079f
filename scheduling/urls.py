"""URL routes of the scheduling app (included by companion/urls.py)."""

from django.urls import URLPattern, URLResolver

app_name = "scheduling"
urlpatterns: list[URLPattern | URLResolver] = []
