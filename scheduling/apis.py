"""Staff API: a conversation's scheduled replies with their state, times and guard decisions.

``GET /api/v1/conversations/{id}/replies/`` (staff only: 403 for anyone else, checked before
the conversation is looked up so a non-staff caller learns nothing; 404 for an unknown
conversation). Every row says its ``kind``: an ``answer``, a ``follow_up`` (the companion
writing first; ``declined`` when its guards said no, with their decisions) or a ``bubble`` of
the reply before it (``after_reply_id``, ``bubble_index``). ``?state=`` and ``?kind=`` narrow
the list; an unknown value is a 400 with a reason.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.apis import SIGNED_IN, errors
from chat.models import Conversation
from scheduling.models import ScheduledReply
from scheduling.selectors import conversation_replies


class ConversationRepliesApi(APIView):
    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer[Any]):
        state = serializers.ChoiceField(choices=ScheduledReply.State.choices, required=False)
        kind = serializers.ChoiceField(choices=ScheduledReply.Kind.choices, required=False)

    @extend_schema_serializer(component_name="ScheduledReply")
    class OutputSerializer(serializers.ModelSerializer[ScheduledReply]):
        trigger_message_id = serializers.IntegerField(
            allow_null=True,
            help_text="The person message an answer answers, or the companion message a follow-up follows; "
            "null for a bubble.",
        )
        after_reply_id = serializers.IntegerField(
            allow_null=True, help_text="For a bubble: the reply row of the message it comes after."
        )

        class Meta:
            model = ScheduledReply
            fields = [
                "id",
                "kind",
                "state",
                "trigger_message_id",
                "after_reply_id",
                "bubble_index",
                "text",
                "proposed_at",
                "final_at",
                "due_at",
                "typing_at",
                "is_delayed",
                "guard_decisions",
                "generation_attempts",
                "safety_hits",
                "outcome_reason",
                "planned_at",
                "typing_started_at",
                "sent_at",
                "cancelled_at",
                "message_id",
            ]

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=ScheduledReply.State.values, required=False),
            OpenApiParameter("kind", str, enum=ScheduledReply.Kind.values, required=False),
        ],
        responses={200: OutputSerializer(many=True), **errors(400, *SIGNED_IN, 403, 404)},
    )
    def get(self, request: Request, conversation_id: int) -> Response:
        # A plain dict, not the QueryDict: DRF reads an HTML form's "state=" as "not given", and a
        # query string's "?state=" is a state that is none of the five.
        query = self.InputSerializer(data=request.query_params.dict())
        if not query.is_valid():
            field = "state" if "state" in query.errors else "kind"
            choices = ScheduledReply.State.values if field == "state" else ScheduledReply.Kind.values
            return Response(
                {"code": f"{field}_invalid", "detail": f"{field} must be one of {', '.join(choices)}."},
                status=400,
            )
        conversation = Conversation.objects.filter(pk=conversation_id).first()
        if conversation is None:
            raise Http404("No such conversation.")
        replies = conversation_replies(
            conversation=conversation,
            state=query.validated_data.get("state"),
            kind=query.validated_data.get("kind"),
        )
        return Response(self.OutputSerializer(replies, many=True).data)
