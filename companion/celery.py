"""The Celery application shared by the worker, beat and the web process (which only queues)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "companion.settings")

app = Celery("companion")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The worker-side checks (companion.ops.workers) hook Celery's process signals.
import companion.ops.workers  # noqa: E402, F401
