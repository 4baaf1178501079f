"""WebSocket routes (companion/asgi.py mounts them behind token-or-session auth)."""

from django.urls import path, re_path

from chat.consumers import ConversationConsumer, UnknownPathConsumer

websocket_urlpatterns = [
    path("ws/conversations/<int:conversation_id>/", ConversationConsumer.as_asgi()),
    # Last: any other path is refused at the handshake (Channels' router would raise: HTTP 500).
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
