"""REST endpoints under /api/v1/: thin views that validate, call one service or selector, serialize.

Errors of chat's own rules are ``{"code": ..., "detail": ...}`` with 400 (bad input) or 403
(a staff member trying to speak for a person); a conversation the caller may not see is 404,
exactly like one that does not exist.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.http import Http404
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    extend_schema,
    extend_schema_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat import selectors, services
from chat.api_fields import (
    ClientIdField,
    CompanionSlugField,
    MessageTextField,
    StringEmailField,
    StringField,
    StringRegexField,
)
from chat.models import Conversation
from chat.serializers import CompanionSerializer, ConversationSerializer, MessageSerializer
from chat.text_rules import ChatInputInvalid


class ErrorSerializer(serializers.Serializer[Any]):
    """Every JSON error of the API (``chat.api_errors``): ``code``, ``detail``, and for a validation
    error (``code`` "invalid") ``fields``, the messages per field."""

    code = serializers.CharField()
    detail = serializers.CharField()

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        fields = super().get_fields()
        # Declared here, not above: a class attribute named "fields" would shadow the serializer's own.
        fields["fields"] = serializers.DictField(
            child=serializers.ListField(child=serializers.CharField()),
            required=False,
            help_text='Only when code is "invalid": the messages of each field that was refused.',
        )
        return fields


class CursorInvalid(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "The cursor is not one this API handed out."
    default_code = "cursor_invalid"


MESSAGE_PAGE_SIZE = 50
MESSAGE_MAX_PAGE_SIZE = 200


class LimitInvalid(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = f"limit must be a whole number from 1 to {MESSAGE_MAX_PAGE_SIZE}."
    default_code = "limit_invalid"


# The largest id PostgreSQL's bigint holds: a cursor position past it was never handed out.
_MAX_ID = 2**63 - 1


# The statuses every operation can answer besides its own (all in the one error shape): 401
# without a valid token or session, 429 over the throttle (or a login lockout), and for a body
# 400 malformed or invalid, 413 too large, 415 not JSON; 404 where the path names a conversation.
SIGNED_IN = (401, 429)
WITH_BODY = (400, 413, 415)


# Request examples in the schema (Swagger UI shows them; the schema fuzz test sends them).
EXAMPLE_ACCOUNT = {"username": "hana", "password": "a long passphrase of hers"}


def errors(*statuses: int) -> dict[int, type[ErrorSerializer]]:
    return {status_code: ErrorSerializer for status_code in statuses}


def error_response(exc: ChatInputInvalid) -> Response:
    code = status.HTTP_403_FORBIDDEN if isinstance(exc, services.NotConversationPerson) else 400
    return Response({"code": exc.code, "detail": exc.detail}, status=code)


def visible_conversation(request: Request, conversation_id: int) -> Conversation:
    conversation = selectors.conversation_get(user=request.user, conversation_id=conversation_id)
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


class RegisterApi(APIView):
    """Create a person account; the answer carries the API token for the app."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="RegisterInput")
    class InputSerializer(serializers.Serializer[Any]):
        username = StringRegexField(r"^[\w.@+-]+\Z", max_length=150)
        password = StringField(write_only=True, trim_whitespace=False, min_length=1, max_length=128)
        email = StringEmailField(required=False, default="")

    @extend_schema_serializer(component_name="RegisterOutput")
    class OutputSerializer(serializers.Serializer[Any]):
        id = serializers.IntegerField()
        username = serializers.CharField()
        token = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={201: OutputSerializer, **errors(*WITH_BODY, 429)},
        auth=[],
        examples=[
            OpenApiExample(
                "register", value=EXAMPLE_ACCOUNT | {"email": "hana@example.org"}, request_only=True
            )
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            user, token = services.person_register(**data.validated_data)
        except ChatInputInvalid as exc:
            return error_response(exc)
        output = {"id": user.pk, "username": user.get_username(), "token": token.key}
        return Response(self.OutputSerializer(output).data, status=status.HTTP_201_CREATED)


class TokenApi(APIView):
    """Exchange a username and password for the API token (``Authorization: Token <key>``)."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema_serializer(component_name="TokenInput")
    class InputSerializer(serializers.Serializer[Any]):
        username = StringField(min_length=1, max_length=150)
        password = StringField(write_only=True, trim_whitespace=False, min_length=1, max_length=128)

    @extend_schema_serializer(component_name="TokenOutput")
    class OutputSerializer(serializers.Serializer[Any]):
        token = serializers.CharField()

    @extend_schema(
        request=InputSerializer,
        responses={200: OutputSerializer, **errors(*WITH_BODY, 429)},
        auth=[],
        examples=[OpenApiExample("log in", value=EXAMPLE_ACCOUNT, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(request._request, **data.validated_data)
        if user is None:
            return Response(
                {"code": "credentials_invalid", "detail": "Unknown username or wrong password."},
                status=status.HTTP_400_BAD_REQUEST,
            )
        return Response(self.OutputSerializer({"token": services.person_token(user=user).key}).data)


class CompanionListApi(APIView):
    """Every companion a person can talk with."""

    @extend_schema(responses={200: CompanionSerializer(many=True), **errors(*SIGNED_IN)})
    def get(self, request: Request) -> Response:
        return Response(CompanionSerializer(selectors.companion_list(), many=True).data)


class ConversationListApi(APIView):
    """The caller's conversations (staff: everyone's); POST opens one with a companion."""

    @extend_schema_serializer(component_name="ConversationCreateInput")
    class InputSerializer(serializers.Serializer[Any]):
        companion = CompanionSlugField()
        time_zone = StringField(required=False, min_length=1, max_length=64, help_text="IANA name.")
        person_age_group = serializers.ChoiceField(
            choices=Conversation.AgeGroup.choices, default=Conversation.AgeGroup.ADULT
        )

    @extend_schema(responses={200: ConversationSerializer(many=True), **errors(*SIGNED_IN)})
    def get(self, request: Request) -> Response:
        return Response(
            ConversationSerializer(selectors.conversation_list(user=request.user), many=True).data
        )

    @extend_schema(
        request=InputSerializer,
        responses={
            201: ConversationSerializer,
            200: ConversationSerializer,
            **errors(*WITH_BODY, *SIGNED_IN),
        },
        description="201 with the new conversation; 200 with the existing one if the caller "
        "already talks with that companion. time_zone defaults to the companion's.",
        examples=[
            OpenApiExample("open", value={"companion": "luda", "time_zone": "Asia/Seoul"}, request_only=True)
        ],
    )
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            # The default permission, IsAuthenticated, leaves no AnonymousUser here.
            conversation, created = services.conversation_get_or_create(
                person=cast(User, request.user), **data.validated_data
            )
        except ChatInputInvalid as exc:
            return error_response(exc)
        return Response(
            ConversationSerializer(conversation).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ConversationDetailApi(APIView):
    @extend_schema(responses={200: ConversationSerializer, **errors(*SIGNED_IN, 404)})
    def get(self, request: Request, conversation_id: int) -> Response:
        return Response(ConversationSerializer(visible_conversation(request, conversation_id)).data)


class MessagePagination(CursorPagination):
    """Newest first by default (``next`` pages back in time); with ``?after=<id>`` oldest first
    from just after that id (``next`` pages forward), which is how a client re-syncs."""

    page_size = MESSAGE_PAGE_SIZE
    page_size_query_param = "limit"
    max_page_size = MESSAGE_MAX_PAGE_SIZE
    ordering = "-id"

    def get_page_size(self, request: Request) -> int:
        # DRF quietly falls back to the default for a limit that is no number ("abc", 0, -1), so
        # a client's mistake went unnoticed; a limit is input like any other: refuse it with 400.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # Checked as text first: int() also reads " 5", "1_0" and digits other than ASCII ones.
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 3 and 1 <= int(raw) <= self.max_page_size):
            raise LimitInvalid()
        return int(raw)

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        return ("id",) if "after" in request.query_params else ("-id",)

    def decode_cursor(self, request: Request) -> Cursor | None:
        # DRF answers a garbled cursor with 404 and passes any position on to the query, where a
        # position that is no id raised ValueError (a 500). A cursor is input: refuse it with 400.
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise CursorInvalid() from exc
        # The stubs type the position as an int; decoded from the query string it is a str.
        position = str(cursor.position) if cursor is not None and cursor.position is not None else None
        # Beyond bigint it is no id; past 4,300 digits the query's int() would even raise (a 500).
        if position is not None and not (
            position.isascii() and position.isdigit() and len(position) <= 19 and int(position) <= _MAX_ID
        ):
            raise CursorInvalid()
        return cursor


class MessageListApi(APIView):
    """A conversation's messages (GET, cursor-paginated) and the person's send (POST)."""

    pagination_class = MessagePagination

    @extend_schema_serializer(component_name="MessageSendInput")
    class InputSerializer(serializers.Serializer[Any]):
        text = MessageTextField(
            help_text="1..CHAT_MESSAGE_MAX_LENGTH characters after trimming, no control characters "
            "but newline and tab."
        )
        client_id = ClientIdField(help_text="Chosen by the client; a retry reuses it.")

    @extend_schema(
        parameters=[
            OpenApiParameter("after", int, description="Only messages with a larger id, oldest first."),
            OpenApiParameter(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MESSAGE_MAX_PAGE_SIZE},
                description=f"Page size (default {MESSAGE_PAGE_SIZE}); anything else is 400 limit_invalid.",
            ),
            OpenApiParameter("cursor", str, description="The cursor of a next/previous link."),
        ],
        responses={200: MessageSerializer(many=True), **errors(400, *SIGNED_IN, 404)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        conversation = visible_conversation(request, conversation_id)
        raw_after = request.query_params.get("after")
        after: int | None = None
        if raw_after is not None:
            try:
                after = int(raw_after)
            except ValueError:
                return Response(
                    {"code": "after_invalid", "detail": f"after must be a message id, not {raw_after!r}."},
                    status=status.HTTP_400_BAD_REQUEST,
                )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            selectors.message_list(conversation=conversation, after=after), request, view=self
        )
        return paginator.get_paginated_response(MessageSerializer(page, many=True).data)

    @extend_schema(
        request=InputSerializer,
        responses={
            201: MessageSerializer,
            200: MessageSerializer,
            **errors(*WITH_BODY, *SIGNED_IN, 403, 404),
        },
        description="201 with the stored message; 200 with the same message when this client_id "
        "was already sent in this conversation (nothing is stored twice).",
        examples=[
            OpenApiExample("send", value={"text": "hey luda", "client_id": "c-0001"}, request_only=True)
        ],
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = visible_conversation(request, conversation_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            message, created = services.message_post(
                conversation=conversation, author=cast(User, request.user), **data.validated_data
            )
        except ChatInputInvalid as exc:
            return error_response(exc)
        return Response(
            MessageSerializer(message).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class ConversationReadApi(APIView):
    """The person has read every message up to ``up_to`` (a message id); the mark never moves back."""

    @extend_schema_serializer(component_name="ReadMarkInput")
    class InputSerializer(serializers.Serializer[Any]):
        up_to = serializers.IntegerField(min_value=1)

    @extend_schema(
        request=InputSerializer,
        responses={200: ConversationSerializer, **errors(*WITH_BODY, *SIGNED_IN, 403, 404)},
    )
    def post(self, request: Request, conversation_id: int) -> Response:
        conversation = visible_conversation(request, conversation_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            conversation = services.person_mark_read(
                conversation=conversation, user=cast(User, request.user), **data.validated_data
            )
        except ChatInputInvalid as exc:
            return error_response(exc)
        return Response(ConversationSerializer(conversation).data)
