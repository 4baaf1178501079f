"""Admin for staff: every scheduled reply with its state, times and recorded decisions (read-only)."""

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
    list_display = ["id", "conversation", "state", "is_delayed", "due_at", "sent_at", "short_text"]
    list_filter = ["state", "is_delayed"]
    search_fields = ["text", "conversation__person__username", "conversation__companion__name"]
    date_hierarchy = "planned_at"
    list_select_related = ["conversation__person", "conversation__companion"]
    raw_id_fields = ["conversation", "trigger_message"]

    @admin.display(description="text")
    def short_text(self, reply: ScheduledReply) -> str:
        return reply.text[:60]

    # The rows are the reply loop's record: staff inspect them, the services alone write them.
    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in ScheduledReply._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
