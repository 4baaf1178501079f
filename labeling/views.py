"""HTTP of the labeling tool, staff only: four pages and three small JSON endpoints.

Pages (server-rendered, plain JS on top) redirect anyone who is not staff to the login page;
the JSON endpoints (DRF, session auth with CSRF) answer 403 to them. Views validate, call one
service or selector, and render; errors come back as ``{"error": reason}`` with HTTP 400
(403 for reviewing one's own label), and nothing is stored by a refused request.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.decorators import method_decorator
from django.views import View
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.models import Companion, Message
from companion.generator import TranscriptError, render_training_example
from labeling import selectors, services, time_editor
from labeling.export import label_dialogue
from labeling.models import DelayLabel, DelayTask

staff_only = staff_member_required(login_url=settings.LOGIN_URL)


def _error(message: str, code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"error": message}, status=code)


def _first_error(errors: Any) -> str:
    """DRF's nested error dict as one readable line: 'field: reason'."""
    if isinstance(errors, dict):
        field, value = next(iter(errors.items()))
        inner = _first_error(value)
        return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(errors, list) and errors:
        return _first_error(errors[0])
    return str(errors)


# --- pages -----------------------------------------------------------------------------------


@method_decorator(staff_only, name="dispatch")
class QueuePage(View):
    """The task queue, filterable by rule, companion and state; j/k and Enter move and open."""

    def get(self, request: HttpRequest) -> HttpResponse:
        rule = request.GET.get("rule") or None
        state = request.GET.get("state") or None
        companion = request.GET.get("companion") or ""
        companion_id = int(companion) if companion.isdigit() else None
        tasks = selectors.task_queue(rule=rule, companion_id=companion_id, state=state)[:500]
        return render(
            request,
            "labeling/queue.html",
            {
                "tasks": tasks,
                "rules": selectors.task_rules(),
                "companions": Companion.objects.order_by("name"),
                "states": DelayTask.State.choices,
                "selected": {"rule": rule or "", "state": state or "", "companion": companion},
            },
        )


@method_decorator(staff_only, name="dispatch")
class TaskPage(View):
    """One task: every turn with its local time, the cut, the delayed reply's time and text."""

    def get(self, request: HttpRequest, task_id: int) -> HttpResponse:
        task = get_object_or_404(DelayTask.objects.select_related("conversation__companion"), pk=task_id)
        label = selectors.label_of(task=task, annotator=request.user)
        cut_after_id = label.cut_after_id if label and label.cut_after_id else task.suspected_message_id
        reply_time = None
        if label and label.cut_after and label.delay is not None:
            reply_time = time_editor.from_delay(
                base=label.cut_after.created_at,
                delay_minutes=int(label.delay.total_seconds() // 60),
                time_zone=task.conversation.time_zone,
                max_delay_minutes=task.conversation.companion.max_delay_minutes,
            )
        next_task = selectors.task_queue(state=DelayTask.State.OPEN).filter(id__gt=task.pk).first()
        return render(
            request,
            "labeling/task.html",
            {
                "task": task,
                "label": label,
                "turns": selectors.task_turns(task=task, cut_after_id=cut_after_id),
                "cut_after_id": cut_after_id,
                "reply_time": reply_time,
                "next_task": next_task,
            },
        )


@method_decorator(staff_only, name="dispatch")
class ReviewPage(View):
    """Submitted labels of other people, each with the training example it will become."""

    def get(self, request: HttpRequest) -> HttpResponse:
        items = []
        for label in selectors.labels_for_review(reviewer=request.user):
            try:
                example = render_training_example(label_dialogue(label), label.reply_at, label.reply_text)
                preview = example["prompt"] + example["completion"]
            except TranscriptError as exc:
                preview = f"(cannot be rendered: {exc})"
            assert label.delay is not None
            items.append(
                {
                    "label": label,
                    "preview": preview,
                    "relative": time_editor.format_delay(int(label.delay.total_seconds() // 60)),
                    "local_reply": time_editor.local_time_label(
                        label.reply_at, label.task.conversation.time_zone
                    ),
                    "bucket": selectors.delay_bucket(label.delay),
                }
            )
        return render(request, "labeling/review.html", {"items": items})


@method_decorator(staff_only, name="dispatch")
class AgreementPage(View):
    """Tasks with two or more answers: buckets side by side and the pairwise agreement rate."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, "labeling/agreement.html", {"report": selectors.agreement_report()})


# --- JSON endpoints --------------------------------------------------------------------------


class TimeConvertApi(APIView):
    """Relative <-> absolute reply time for a task's cut turn (the page's one converter)."""

    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        task_id = serializers.IntegerField()
        cut_after_id = serializers.IntegerField()
        delay_minutes = serializers.IntegerField(required=False)
        local_date = serializers.DateField(required=False)
        local_time = serializers.TimeField(required=False, format="%H:%M")

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            has_delay = "delay_minutes" in attrs
            has_local = "local_date" in attrs and "local_time" in attrs
            if has_delay == has_local:
                raise serializers.ValidationError("Send either delay_minutes or local_date with local_time.")
            return attrs

    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return _error(_first_error(serializer.errors))
        data = serializer.validated_data
        task = get_object_or_404(
            DelayTask.objects.select_related("conversation__companion"), pk=data["task_id"]
        )
        cut = Message.objects.filter(pk=data["cut_after_id"], conversation_id=task.conversation_id).first()
        if cut is None:
            return _error(f"Message {data['cut_after_id']} is not a turn of this task's conversation.")
        zone = task.conversation.time_zone
        max_delay = task.conversation.companion.max_delay_minutes
        try:
            if "delay_minutes" in data:
                result = time_editor.from_delay(
                    base=cut.created_at,
                    delay_minutes=data["delay_minutes"],
                    time_zone=zone,
                    max_delay_minutes=max_delay,
                )
            else:
                result = time_editor.from_local(
                    base=cut.created_at,
                    local_date=data["local_date"],
                    local_clock=data["local_time"],
                    time_zone=zone,
                    max_delay_minutes=max_delay,
                )
        except time_editor.TimeEditorError as exc:
            return _error(str(exc))
        return Response(result.as_json())


class LabelApi(APIView):
    """The annotator's label on a task: save a draft, skip ("no delay needed") or submit."""

    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        action = serializers.ChoiceField(choices=["draft", "skip", "submit"])
        cut_after_id = serializers.IntegerField(required=False, allow_null=True)
        delay_minutes = serializers.IntegerField(required=False, allow_null=True)
        reply_text = serializers.CharField(
            required=False, allow_blank=True, trim_whitespace=False, default=""
        )

    class OutputSerializer(serializers.ModelSerializer):
        task_state = serializers.CharField(source="task.state")

        class Meta:
            model = DelayLabel
            fields = ["id", "state", "cut_after_id", "reply_at", "reply_text", "updated_at", "task_state"]

    def post(self, request: Request, task_id: int) -> Response:
        task = get_object_or_404(DelayTask, pk=task_id)
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return _error(_first_error(serializer.errors))
        data = serializer.validated_data
        try:
            label = services.label_save(
                task=task,
                annotator=request.user,
                action=data["action"],
                cut_after_id=data.get("cut_after_id"),
                delay_minutes=data.get("delay_minutes"),
                reply_text=data.get("reply_text", ""),
            )
        except services.LabelingError as exc:
            return _error(str(exc))
        return Response(self.OutputSerializer(label).data)


class ReviewApi(APIView):
    """A second person's decision on a submitted label: approve, send back or reject."""

    permission_classes = [IsAdminUser]

    class InputSerializer(serializers.Serializer):
        decision = serializers.ChoiceField(choices=["approve", "send_back", "reject"])
        note = serializers.CharField(required=False, allow_blank=True, default="")

    class OutputSerializer(serializers.ModelSerializer):
        reviewer = serializers.CharField(source="reviewer.get_username")
        task_state = serializers.CharField(source="task.state")

        class Meta:
            model = DelayLabel
            fields = ["id", "state", "reviewer", "reviewed_at", "review_note", "task_state"]

    def post(self, request: Request, label_id: int) -> Response:
        label = get_object_or_404(DelayLabel, pk=label_id)
        serializer = self.InputSerializer(data=request.data)
        if not serializer.is_valid():
            return _error(_first_error(serializer.errors))
        try:
            label = services.label_review(
                label=label,
                reviewer=request.user,
                decision=serializer.validated_data["decision"],
                note=serializer.validated_data["note"],
            )
        except services.LabelingForbidden as exc:
            return _error(str(exc), status.HTTP_403_FORBIDDEN)
        except services.LabelingError as exc:
            return _error(str(exc))
        return Response(self.OutputSerializer(label).data)
