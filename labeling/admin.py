"""Admin views of the labeling data, read-mostly: changes go through the labeling tool's services."""

from django.contrib import admin

from labeling.models import DelayLabel, DelayTask, LabelEvent


class LabelInline(admin.TabularInline):
    model = DelayLabel
    extra = 0
    fields = readonly_fields = (
        "annotator",
        "state",
        "cut_after",
        "reply_at",
        "reply_text",
        "reviewer",
        "reviewed_at",
    )
    can_delete = False
    show_change_link = True


@admin.register(DelayTask)
class DelayTaskAdmin(admin.ModelAdmin):
    list_display = ["id", "rule", "conversation", "state", "created_at"]
    list_filter = ["rule", "state", "conversation__companion"]
    readonly_fields = [
        "conversation",
        "rule",
        "trigger_message",
        "suspected_message",
        "matched_text",
        "matched_example",
        "similarity",
        "created_at",
    ]
    inlines = [LabelInline]


class EventInline(admin.TabularInline):
    model = LabelEvent
    extra = 0
    fields = readonly_fields = ("at", "actor", "action", "snapshot")
    can_delete = False


@admin.register(DelayLabel)
class DelayLabelAdmin(admin.ModelAdmin):
    list_display = ["id", "task", "annotator", "state", "reply_at", "reviewer", "updated_at"]
    list_filter = ["state", "task__rule"]
    readonly_fields = [
        "task",
        "annotator",
        "state",
        "cut_after",
        "reply_at",
        "reply_text",
        "created_at",
        "updated_at",
        "submitted_at",
        "reviewer",
        "reviewed_at",
        "review_note",
    ]
    inlines = [EventInline]

    def has_add_permission(self, request) -> bool:  # labels are made in the labeling tool
        return False
