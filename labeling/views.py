"""HTTP of the labeling tool, staff only: four pages and three small JSON endpoints.

Pages (server-rendered, plain JS on top) redirect anyone who is not staff to the login page;
the JSON endpoints (DRF, session auth with CSRF) answer 403 to them. Views validate, call one
service or selector, and render; JSON errors come back as ``{"code", "detail"}`` (see
:func:`labeling_exception_handler`) with HTTP 400 (403 for reviewing one's own label), and
nothing is stored by a refused request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.decorators import method_decorator
from django.views import View
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from chat.api_errors import api_exception_handler, first_error_message
from chat.models import Companion
from labeling import selectors, services
from labeling.charts import bar_chart_svg
from labeling.models import DelayLabel, DelayTask

staff_only: Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]] = staff_member_required(
    login_url=settings.LOGIN_URL
)


def _staff(request: HttpRequest) -> User:
    """The signed-in staff member; every view here is behind ``staff_only`` or ``IsAdminUser``."""
    return cast(User, request.user)


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
        page = selectors.task_page(task=task, annotator=_staff(request))
        return render(request, "labeling/task.html", {"task": task, "page": page})


@method_decorator(staff_only, name="dispatch")
class ReviewPage(View):
    """Submitted labels of other people, each with the training example it will become."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(
            request, "labeling/review.html", {"items": selectors.review_items(reviewer=_staff(request))}
        )


@method_decorator(staff_only, name="dispatch")
class AgreementPage(View):
    """Tasks with two or more answers: buckets side by side and the pairwise agreement rate."""

    def get(self, request: HttpRequest) -> HttpResponse:
        chart = bar_chart_svg(selectors.label_bucket_counts(), title="Delay buckets of the labels")
        return render(
            request, "labeling/agreement.html", {"report": selectors.agreement_report(), "chart": chart}
        )


# --- JSON endpoints --------------------------------------------------------------------------


def labeling_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every error of the labeling API as ``{"code", "detail"}`` (the shape chat answers).

    The labeling tool's own refusals keep their code (403 for reviewing one's own label, else
    400); invalid input is ``invalid`` with its first problem as one line; DRF's own answers
    (401, 403, 404, 405, malformed JSON) keep their status and get their DRF code.
    """
    if isinstance(exc, services.LabelingError):
        http_status = status.HTTP_403_FORBIDDEN if isinstance(exc, services.LabelingForbidden) else 400
        return Response({"code": exc.code, "detail": exc.detail}, status=http_status)
    if isinstance(exc, serializers.ValidationError):
        # One line, without chat's per-field map: the labeling page shows the detail as it is.
        return Response({"code": "invalid", "detail": first_error_message(exc.detail)}, status=400)
    return api_exception_handler(exc, context)


class LabelingApi(APIView):
    """Base of the labeling JSON endpoints: staff only, errors as ``{"code", "detail"}``."""

    permission_classes = [IsAdminUser]
    # The labeling page's own endpoints, not the public API: left out of the OpenAPI schema.
    schema = None

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Response | None]:
        return labeling_exception_handler


class TimeConvertApi(LabelingApi):
    """Relative <-> absolute reply time for a task's cut turn (the page's one converter)."""

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
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        task = get_object_or_404(
            DelayTask.objects.select_related("conversation__companion"), pk=data["task_id"]
        )
        result = services.reply_time(
            task=task,
            cut_after_id=data["cut_after_id"],
            delay_minutes=data.get("delay_minutes"),
            local_date=data.get("local_date"),
            local_clock=data.get("local_time"),
        )
        return Response(result.as_json())


class LabelApi(LabelingApi):
    """The annotator's label on a task: save a draft, skip ("no delay needed") or submit."""

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
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        label = services.label_save(
            task=task,
            annotator=_staff(request),
            action=data["action"],
            cut_after_id=data.get("cut_after_id"),
            delay_minutes=data.get("delay_minutes"),
            reply_text=data.get("reply_text", ""),
        )
        return Response(self.OutputSerializer(label).data)


class ReviewApi(LabelingApi):
    """A second person's decision on a submitted label: approve, send back or reject."""

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
        serializer.is_valid(raise_exception=True)
        label = services.label_review(
            label=label,
            reviewer=_staff(request),
            decision=serializer.validated_data["decision"],
            note=serializer.validated_data["note"],
        )
        return Response(self.OutputSerializer(label).data)
