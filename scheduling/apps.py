"""Django app config for the reply loop; registers its hooks on chat when apps are ready."""

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    verbose_name = "Scheduling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Chat never imports scheduling; it announces person messages to whoever registered.
        from chat.hooks import register_person_message_hook
        from scheduling import services

        register_person_message_hook(
            in_transaction=services.on_person_message_in_transaction,
            after_commit=services.on_person_message_committed,
        )
