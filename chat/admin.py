"""Admin for support staff: companions (personas and delay settings), conversations, messages."""

from typing import cast

from django.contrib import admin

from chat.models import Companion, Conversation, Message


@admin.register(Companion)
class CompanionAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "default_time_zone", "instant_threshold_minutes", "max_delay_minutes"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class MessageInline(admin.TabularInline):
    model = Message
    fields = ["role", "text", "created_at", "client_id", "scheduled_reply_id"]
    readonly_fields = cast(list[str], fields)  # plain names; the stubs type `fields` as nested groups
    extra = 0
    can_delete = False
    ordering = ["-id"]
    max_num = 0


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "person", "companion", "time_zone", "person_age_group", "created_at"]
    list_filter = ["companion", "person_age_group"]
    search_fields = ["person__username", "companion__name"]
    raw_id_fields = ["person"]
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation", "role", "short_text", "created_at"]
    list_filter = ["role"]
    search_fields = ["text", "client_id"]
    raw_id_fields = ["conversation"]
    readonly_fields = ["scheduled_reply_id"]

    @admin.display(description="text")
    def short_text(self, message: Message) -> str:
        return message.text[:80]
