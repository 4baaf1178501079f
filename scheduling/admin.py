"""Admin for staff: every scheduled reply (answers, follow-ups, bubbles) with its state, times and
recorded decisions (read-only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.http import HttpRequest

from scheduling.models import ScheduledReply

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[ScheduledReply]
else:  # ModelAdmin is generic only in django-stubs, not at run time
    _ModelAdmin = admin.ModelAdmin


@admin.register(ScheduledReply)
class ScheduledReplyAdmin(_ModelAdmin):
    list_display = [
        "id",
        "conversation",
        "kind",
        "bubble_index",
        "state",
        "is_delayed",
        "due_at",
        "sent_at",
        "short_text",
        "guard_changes",
    ]
    list_filter = ["kind", "state", "is_delayed"]
    search_fields = ["text", "conversation__person__username", "conversation__companion__name"]
    date_hierarchy = "planned_at"
    list_select_related = ["conversation__person", "conversation__companion"]
    raw_id_fields = ["conversation", "trigger_message", "after_reply"]

    @admin.display(description="text")
    def short_text(self, reply: ScheduledReply) -> str:
        return reply.text[:60]

    @admin.display(description="guard changes")
    def guard_changes(self, reply: ScheduledReply) -> str:
        """The rules that changed or declined the time, in order ("quiet_hours, daily_cap")."""
        return ", ".join(d.get("rule", "?") for d in reply.guard_decisions if d.get("changed")) or "-"

    # The rows are the reply loop's record: staff inspect them, the services alone write them.
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in ScheduledReply._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
