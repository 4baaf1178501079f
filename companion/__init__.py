"""Django project package: settings, URLs, ASGI entry point and the Celery app.

Deliberately empty of imports: ``companion.generator`` lives under this package and must load
without Django or Celery (a training script or a notebook imports it). The Celery app is bound
in every Django process by :class:`companion.apps.CompanionConfig` instead, and Celery's
programs name it directly (``celery -A companion.celery``).
"""
