"""Running Django ORM code from async code (the socket consumer and its auth middleware)."""

from __future__ import annotations

import functools
from typing import Any

from channels.db import database_sync_to_async
from django.db import close_old_connections


def in_db_thread(function: Any) -> Any:
    """Run ``function`` in the thread pool with Django's connection housekeeping around it.

    asgiref (3.13) runs the function inside the caller's context, where Django's connection
    storage follows the context rather than the thread; the housekeeping that
    ``database_sync_to_async`` does outside that context would never see (nor close) the
    connection used. So it is repeated here, inside: CONN_MAX_AGE is honoured again.
    """

    @functools.wraps(function)
    def with_housekeeping(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return database_sync_to_async(with_housekeeping, thread_sensitive=False)  # parallel, see the consumer
