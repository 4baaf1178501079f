"""The project's own app config: binds the Celery app in every Django process.

``@shared_task`` resolves to the current Celery app when a task is called; importing
``companion.celery`` here, once the apps are ready, makes that app the project's in the web
process, the workers and management commands alike, while ``companion/__init__.py`` stays free
of imports so that the generator package loads without Django.
"""

from django.apps import AppConfig


class CompanionConfig(AppConfig):
    name = "companion"
    verbose_name = "Companion project"

    def ready(self) -> None:
        import companion.celery  # noqa: F401  (binds shared tasks to the project's app)
