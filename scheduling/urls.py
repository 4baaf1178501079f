"""URL routes of the scheduling app (included by companion/urls.py)."""

from django.urls import URLPattern, URLResolver, path

from scheduling import apis

app_name = "scheduling"
urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "api/v1/conversations/<int:conversation_id>/replies/",
        apis.ConversationRepliesApi.as_view(),
        name="conversation-replies",
    ),
]
