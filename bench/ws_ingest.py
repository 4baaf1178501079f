"""WebSocket ingest benchmark: N clients each send M messages; messages/s and send→message.created latency.

Three targets, the same load, in one run, all on loopback:

1. ``stack``  — daphne serving ``companion.asgi`` (the real consumer: auth, conversation lookup,
   ``message_post`` with its row lock, hooks and after-commit broadcast through Redis);
2. ``echo``   — a bare ``websockets`` server that answers every frame with a ``message.created``;
3. ``insert`` — a bare ``websockets`` server that stores each frame with one psycopg INSERT into
   the same PostgreSQL table (``chat_message``) and answers with the stored row.

Each client is a closed loop: it sends a message, waits for its own ``message.created``, sends
the next. Ratios ``stack/echo`` and ``stack/insert`` (the fair one; target >= 0.5) are printed.

    .venv/bin/python bench/ws_ingest.py --clients 20 --messages 50

Engines: ``DATABASE_URL`` / ``REDIS_URL`` if set, else the embedded PostgreSQL under ``var/``
(database ``companion_bench``, recreated by each run) and a private embedded Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
WARMUP_MESSAGES = 2
CONNECT_TIMEOUT_SECONDS = 60.0
REPLY_TIMEOUT_SECONDS = 30.0
# The ASGI servers the stack can run under; the first is the one `make run` and docker-compose use.
SERVERS = ("uvicorn", "daphne")
ASGI_APPLICATION = "companion.asgi:application"


@dataclass
class Result:
    name: str
    messages: int
    seconds: float
    latencies_ms: list[float]
    # The serving process's CPU (user + system) per frame, connecting and warm-up included: what
    # the machine's load does not change much, unlike the rates.
    server_cpu_ms_per_message: float = float("nan")

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

    def line(self) -> str:
        return (
            f"{self.name:<7} {self.messages:>6} msgs  {self.rate:>8.1f} msg/s  "
            f"p50 {statistics.median(self.latencies_ms):>7.2f} ms  p99 {self.percentile(0.99):>7.2f} ms  "
            f"server CPU {self.server_cpu_ms_per_message:.2f} ms/msg"
        )


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_load(
    name: str, urls: list[str], messages: int, servers: list[subprocess.Popen[bytes]]
) -> Result:
    """:func:`run_load` against ``servers``, with their processes' CPU (summed) per frame."""
    cpu_before = sum(process_cpu_seconds(server.pid) for server in servers)
    result = asyncio.run(run_load(name, urls, messages))
    cpu = sum(process_cpu_seconds(server.pid) for server in servers) - cpu_before
    result.server_cpu_ms_per_message = cpu * 1000 / (len(urls) * (messages + WARMUP_MESSAGES))
    return result


# --- the load -----------------------------------------------------------------------------------


async def client_loop(url: str, client_number: int, messages: int, latencies: list[float]) -> None:
    import websockets

    async with websockets.connect(url, open_timeout=CONNECT_TIMEOUT_SECONDS, max_size=2**20) as socket_:
        for number in range(-WARMUP_MESSAGES, messages):
            client_id = f"c{client_number}-m{number}-{time.monotonic_ns()}"
            frame = json.dumps(
                {"type": "message.send", "text": f"bench message {number}", "client_id": client_id}
            )
            started = time.perf_counter()
            await socket_.send(frame)
            while True:  # skip anything that is not this message's confirmation
                event = json.loads(await asyncio.wait_for(socket_.recv(), REPLY_TIMEOUT_SECONDS))
                if event.get("type") == "error":
                    raise RuntimeError(f"server error: {event}")
                if event.get("type") == "message.created" and event["message"]["client_id"] == client_id:
                    break
            if number >= 0:
                latencies.append((time.perf_counter() - started) * 1000)


async def run_load(name: str, urls: list[str], messages: int) -> Result:
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(client_loop(url, n, messages, latencies) for n, url in enumerate(urls)))
    elapsed = time.perf_counter() - started
    return Result(name=name, messages=len(latencies), seconds=elapsed, latencies_ms=latencies)


# --- the bare baselines (run in a child process: `--serve echo|insert PORT`) ---------------------


async def serve_baseline(kind: str, port: int, database_url: str, conversation_id: int) -> None:
    import psycopg
    import websockets

    async def handle(connection: Any) -> None:
        database = (
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) if kind == "insert" else None
        )
        try:
            async for frame in connection:
                event = json.loads(frame)
                if database is None:
                    message = {"id": 0, "client_id": event["client_id"], "text": event["text"]}
                else:
                    cursor = await database.execute(
                        "INSERT INTO chat_message (conversation_id, role, text, created_at, client_id) "
                        "VALUES (%s, 'person', %s, now(), %s) RETURNING id, created_at",
                        (conversation_id, event["text"], event["client_id"]),
                    )
                    # INSERT ... RETURNING always returns the one row it inserted.
                    row = cast(tuple[Any, ...], await cursor.fetchone())
                    message = {
                        "id": row[0],
                        "client_id": event["client_id"],
                        "text": event["text"],
                        "created_at": row[1].isoformat(),
                    }
                await connection.send(json.dumps({"type": "message.created", "message": message}))
        finally:
            if database is not None:
                await database.close()

    async with websockets.serve(handle, "127.0.0.1", port, max_size=2**20):
        print("ready", flush=True)
        await asyncio.Future()


# --- orchestration ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, child: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + CONNECT_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise SystemExit(f"{what} exited with {child.returncode} while starting")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on {port} within {CONNECT_TIMEOUT_SECONDS:.0f}s")


def prepare_engines(conn_max_age: int) -> dict[str, str]:
    """Set up the bench database and Redis; return the environment for the children."""
    from companion import embedded

    os.environ.setdefault("COMPANION_DEV_SECRET", "1")
    if not os.environ.get("DATABASE_URL"):
        data_dir = Path(os.environ.get("COMPANION_DATA_DIR", REPO_ROOT / "var"))
        embedded.ensure_postgres(data_dir, database="postgres")
        server = embedded._running["postgres"]
        server.psql('DROP DATABASE IF EXISTS "companion_bench" WITH (FORCE);')
        server.psql('CREATE DATABASE "companion_bench";')
        embedded.ensure_postgres(data_dir, database="companion_bench")
    if not os.environ.get("REDIS_URL"):
        embedded.ensure_redis(Path(tempfile.mkdtemp(prefix="companion-bench-redis-")))
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "companion.settings",
            "DATABASE_CONN_MAX_AGE": str(conn_max_age),
            # The web process runs with a connection pool under make run and docker-compose;
            # DATABASE_POOL=0 measures it without (then --conn-max-age applies).
            "DATABASE_POOL": os.environ.get("DATABASE_POOL", "1"),
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def prepare_data(clients: int) -> tuple[list[tuple[int, str]], int, str]:
    """Migrate; create one person + conversation per client; return (conversation, token) pairs."""
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "companion.settings"
    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from chat.models import Companion, Conversation

    call_command("migrate", verbosity=0)
    companion, _ = Companion.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    pairs = []
    for number in range(clients):
        user, _ = get_user_model().objects.get_or_create(username=f"bench{number}")
        conversation, _ = Conversation.objects.get_or_create(
            person=user, companion=companion, time_zone="UTC"
        )
        pairs.append((conversation.pk, Token.objects.get_or_create(user=user)[0].key))
    baseline_user, _ = get_user_model().objects.get_or_create(username="bench-baseline")
    baseline, _ = Conversation.objects.get_or_create(
        person=baseline_user, companion=companion, time_zone="UTC"
    )
    settings_dict = connection.settings_dict
    database_url = (
        f"host={settings_dict['HOST']} port={settings_dict.get('PORT') or 5432} "
        f"dbname={settings_dict['NAME']} user={settings_dict['USER']}"
    )
    connection.close()
    return pairs, baseline.pk, database_url


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        args, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr, start_new_session=True
    )


def stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="concurrent WebSocket clients (N)")
    parser.add_argument("--messages", type=int, default=50, help="messages per client (M)")
    parser.add_argument(
        "--conn-max-age",
        type=int,
        default=0,
        help="DATABASE_CONN_MAX_AGE for daphne (0 = what `make run` uses)",
    )
    parser.add_argument(
        "--server",
        action="append",
        choices=SERVERS,
        help=f"ASGI server(s) of the stack, each measured in turn (default {SERVERS[0]}; repeat to compare)",
    )
    parser.add_argument(
        "--web-processes",
        action="append",
        type=int,
        metavar="N",
        help="web processes of the stack, clients dealt round-robin (default 1; repeat to compare)",
    )
    parser.add_argument(
        "--metrics-cost",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="instead: the stack only, ROUNDS times with METRICS_ENABLED off and on; one JSON line",
    )
    parser.add_argument(
        "--serve", nargs=4, metavar=("KIND", "PORT", "DATABASE", "CONVERSATION"), help=argparse.SUPPRESS
    )
    options = parser.parse_args()
    if options.serve:
        kind, port, database_url, conversation_id = options.serve
        asyncio.run(serve_baseline(kind, int(port), database_url, int(conversation_id)))
        return
    if not (1 <= options.clients <= 500 and 1 <= options.messages <= 10_000):
        raise SystemExit("--clients must be 1..500 and --messages 1..10000")

    env = prepare_engines(options.conn_max_age)
    pairs, baseline_conversation, database_url = prepare_data(options.clients)
    print(f"{options.clients} clients x {options.messages} messages, closed loop, {os.cpu_count()} CPUs")
    if options.metrics_cost:
        metrics_cost(env, pairs, options.messages, options.metrics_cost)
        return
    results: dict[str, Result] = {}
    for server in options.server or [SERVERS[0]]:
        for processes in options.web_processes or [1]:
            result = run_stack(env, pairs, options.messages, server, processes)
            results[result.name] = result
    for kind in ("echo", "insert"):
        port = free_port()
        server = start(
            [sys.executable, __file__, "--serve", kind, str(port), database_url, str(baseline_conversation)],
            env,
        )
        try:
            wait_for_port(port, server, f"{kind} baseline")
            urls = [f"ws://127.0.0.1:{port}/"] * options.clients
            results[kind] = measured_load(kind, urls, options.messages, [server])
        finally:
            stop(server)
    for result in results.values():
        print(result.line())
    stacks = [name for name in results if name.startswith("stack")]
    for name in stacks:
        print(f"ratio {name}/echo   {results[name].rate / results['echo'].rate:.2f}x")
        print(f"ratio {name}/insert {results[name].rate / results['insert'].rate:.2f}x  (target >= 0.5x)")
    figures: dict[str, Any] = {
        "bench": "ws_ingest",
        "clients": options.clients,
        "messages": options.messages,
        "servers": options.server or [SERVERS[0]],
        "web_processes": options.web_processes or [1],
    }
    for name, result in results.items():
        figures[name.replace(":", "_")] = {
            "msgs_per_s": round(result.rate, 1),
            "p50_ms": round(statistics.median(result.latencies_ms), 2),
            "p99_ms": round(result.percentile(0.99), 2),
            "server_cpu_ms_per_msg": round(result.server_cpu_ms_per_message, 3),
        }
    for name in stacks:
        key = name.replace(":", "_")
        figures[f"ratio_{key}_echo"] = round(results[name].rate / results["echo"].rate, 4)
        figures[f"ratio_{key}_insert"] = round(results[name].rate / results["insert"].rate, 4)
        figures[f"cpu_ratio_insert_{key}"] = round(
            results["insert"].server_cpu_ms_per_message / results[name].server_cpu_ms_per_message, 4
        )
    print(json.dumps(figures))


def server_command(server: str, port: int) -> list[str]:
    """The command line of an ASGI server serving ``companion.asgi`` on loopback ``port``."""
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), ASGI_APPLICATION]
    from companion.stack import web_command  # uvicorn exactly as `make run` starts it

    return web_command("127.0.0.1", str(port), "--no-access-log", "--log-level", "warning")


def run_stack(
    env: dict[str, str],
    pairs: list[tuple[int, str]],
    messages: int,
    server: str = SERVERS[0],
    processes: int = 1,
) -> Result:
    """The stack under ``processes`` web processes on their own ports, the clients dealt round-robin.

    Every process has its own connection pool and joins the same PostgreSQL and Redis; a socket's
    push reaches the others through the channel layer, as with several machines.
    """
    ports = [free_port() for _ in range(processes)]
    children = [start(server_command(server, port), env) for port in ports]
    try:
        for port, child in zip(ports, children, strict=True):
            wait_for_port(port, child, server)
        urls = [
            f"ws://127.0.0.1:{ports[n % processes]}/ws/conversations/{cid}/?token={key}"
            for n, (cid, key) in enumerate(pairs)
        ]
        name = f"stack:{server}" if processes == 1 else f"stack:{server}x{processes}"
        return measured_load(name, urls, messages, children)
    finally:
        for child in children:
            stop(child)


def metrics_cost(env: dict[str, str], pairs: list[tuple[int, str]], messages: int, rounds: int) -> None:
    """The stack with metrics off and on (multiprocess mode), alternating order per round; one JSON line."""
    folder = tempfile.mkdtemp(prefix="ws-ingest-metrics-")
    rates: dict[str, list[float]] = {"off": [], "on": []}
    for round_number in range(rounds):
        for mode in ("off", "on") if round_number % 2 == 0 else ("on", "off"):
            mode_env = {
                **env,
                "PROMETHEUS_MULTIPROC_DIR": folder,
                "METRICS_ENABLED": "1" if mode == "on" else "0",
            }
            result = run_stack(mode_env, pairs, messages)
            rates[mode].append(result.rate)
            print(f"round {round_number + 1} metrics {mode}: {result.line()}", flush=True)
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(
        json.dumps(
            {
                "bench": "ws_ingest_metrics_cost",
                "clients": len(pairs),
                "messages": messages,
                "rounds": rounds,
                "msgs_per_s_off": round(off, 1),
                "msgs_per_s_on": round(on, 1),
                "ratio_on_off": round(on / off, 4),
                "cost_percent": round((1 - on / off) * 100, 2),
                "rates_off": [round(rate, 1) for rate in rates["off"]],
                "rates_on": [round(rate, 1) for rate in rates["on"]],
            }
        )
    )


if __name__ == "__main__":
    main()
