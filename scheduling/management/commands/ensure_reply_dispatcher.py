"""Register (or update) the beat schedule of the reply dispatcher; safe to run on every start.

``make run`` calls it. The dispatcher runs every ``SCHEDULING_DISPATCH_INTERVAL_SECONDS``
(``--every`` overrides); its messages expire after one interval so that a backlog of stale
dispatcher runs never piles up in Redis while no worker is running.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduling import conf
from scheduling.enqueue import DISPATCH_DUE_REPLIES

TASK_NAME = DISPATCH_DUE_REPLIES
PERIODIC_TASK_NAME = "reply dispatcher"


class Command(BaseCommand):
    help = "Create or update the django-celery-beat schedule of the reply dispatcher (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--every", type=int, default=None, help="Interval in seconds (>= 1).")

    def handle(self, *args: Any, **options: Any) -> None:
        # ``--every 0`` is refused, not read as "unset": only a missing option means the setting.
        every = options["every"]
        if every is None:
            every = int(conf.setting("SCHEDULING_DISPATCH_INTERVAL_SECONDS"))
            if every < 1:
                raise CommandError(f"SCHEDULING_DISPATCH_INTERVAL_SECONDS must be at least 1, not {every}.")
        elif every < 1:
            raise CommandError(f"--every must be at least 1 second, not {every}.")
        with transaction.atomic():
            schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
            task, created = PeriodicTask.objects.select_for_update().get_or_create(
                name=PERIODIC_TASK_NAME,
                defaults={"interval": schedule, "task": TASK_NAME, "expire_seconds": every},
            )
            changed = created
            wanted = {
                "interval": schedule,
                "task": TASK_NAME,
                "expire_seconds": every,
                "enabled": True,
                "crontab": None,
                "solar": None,
                "clocked": None,
                "one_off": False,
            }
            for name, value in wanted.items():
                if getattr(task, name) != value:
                    setattr(task, name, value)
                    changed = True
            if changed:
                task.save()
        verb = "created" if created else ("updated" if changed else "unchanged")
        self.stdout.write(f"reply dispatcher {verb}: {TASK_NAME} every {every}s")
