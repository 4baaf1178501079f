"""The suite runs on real engines: PostgreSQL and Redis, never stand-ins."""

import pytest
import redis
from django.conf import settings
from django.db import connection


@pytest.mark.django_db
def test_database_is_real_postgresql() -> None:
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (name,) = cursor.fetchone()
    assert name == settings.DATABASES["default"]["TEST"]["NAME"]


def test_channel_layer_and_cache_use_real_redis() -> None:
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.pubsub.RedisPubSubChannelLayer"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.set("engine-check", "pong")
    assert client.get("engine-check") == b"pong"
    assert client.info("server")["redis_version"].count(".") == 2
