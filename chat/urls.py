"""URL routes of the chat app (included by companion/urls.py): the REST API and the chat page."""

from django.urls import URLPattern, URLResolver, path

from chat import apis, views

app_name = "chat"
urlpatterns: list[URLPattern | URLResolver] = [
    path("api/v1/auth/register/", apis.RegisterApi.as_view(), name="register"),
    path("api/v1/auth/token/", apis.TokenApi.as_view(), name="token"),
    path("api/v1/companions/", apis.CompanionListApi.as_view(), name="companions"),
    path("api/v1/conversations/", apis.ConversationListApi.as_view(), name="conversations"),
    path(
        "api/v1/conversations/<int:conversation_id>/",
        apis.ConversationDetailApi.as_view(),
        name="conversation",
    ),
    path(
        "api/v1/conversations/<int:conversation_id>/messages/",
        apis.MessageListApi.as_view(),
        name="messages",
    ),
    path(
        "api/v1/conversations/<int:conversation_id>/read/",
        apis.ConversationReadApi.as_view(),
        name="read",
    ),
    path("", views.chat_page, name="page"),
]
