"""Django project package: settings, URLs, ASGI entry point and the Celery app.

Importing the Celery app here makes ``@shared_task`` bind to it in every process.
"""

from companion.celery import app as celery_app

__all__ = ["celery_app"]
