"""Redis figures of ``bench/scale_out.py``: command counts per phase and the cost of one command.

:func:`commandstats` reads ``INFO commandstats`` (calls and microseconds spent executing, per
command) after :func:`commandstats_reset`; a Redis that refuses ``CONFIG RESETSTAT`` (a managed
one) gives the counts since its start. :func:`redis_command_costs` times PUBLISH (to a channel with
one subscriber, as a conversation's group with one web process listening) and SET with redis-py, in
the manner of ``redis-benchmark``: one command per round trip, then pipelined batches, where the
Redis server's own CPU per command (``/proc``) is what bounds one Redis.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from _scale_out_stack import tree_cpu_seconds

ROUND_TRIP_COMMANDS = 10_000
# Enough that the server's CPU (read in clock ticks of 10 ms) is measured to a few per cent.
PIPELINED_COMMANDS = 50_000
PIPELINE_BATCH = 100
# About the size of a pushed message.created on the channel layer (msgpack of the event).
PUBLISH_PAYLOAD = b"x" * 300
COST_CHANNEL = "scale-out-cost"


def _client(redis_url: str) -> Any:
    import redis

    return redis.Redis.from_url(redis_url)


def commandstats_reset(redis_url: str) -> None:
    import redis

    with contextlib.suppress(redis.ResponseError):
        _client(redis_url).config_resetstat()


def commandstats(redis_url: str) -> dict[str, dict[str, float]]:
    """``{command: {"calls", "usec"}}`` since the last reset."""
    info: dict[str, dict[str, Any]] = _client(redis_url).info("commandstats")
    return {
        key.removeprefix("cmdstat_"): {"calls": float(stats["calls"]), "usec": float(stats["usec"])}
        for key, stats in info.items()
    }


def redis_command_costs(redis_url: str, redis_pid: int | None) -> dict[str, Any]:
    """Microseconds per PUBLISH and per SET: round trip, pipelined wall time, and server CPU."""
    client = _client(redis_url)
    subscriber = client.pubsub()
    subscriber.subscribe(**{COST_CHANNEL: lambda message: None})
    # Drained as a web process drains its subscription, so the subscriber's buffer stays small.
    draining = subscriber.run_in_thread(sleep_time=0.01, daemon=True)
    commandstats_reset(redis_url)
    commands: dict[str, Callable[[Any, int], Any]] = {
        "publish": lambda target, _: target.publish(COST_CHANNEL, PUBLISH_PAYLOAD),
        "set": lambda target, number: target.set(f"scale-out-cost:{number % 1000}", PUBLISH_PAYLOAD),
    }
    costs: dict[str, Any] = {
        "round_trip_commands": ROUND_TRIP_COMMANDS,
        "pipelined_commands": PIPELINED_COMMANDS,
        "pipeline_batch": PIPELINE_BATCH,
    }
    try:
        for name, command in commands.items():
            server_before = tree_cpu_seconds(redis_pid) if redis_pid else 0.0
            started = time.perf_counter()
            for number in range(ROUND_TRIP_COMMANDS):
                command(client, number)
            round_trip = (time.perf_counter() - started) / ROUND_TRIP_COMMANDS
            round_trip_server = tree_cpu_seconds(redis_pid) - server_before if redis_pid else None
            server_before = tree_cpu_seconds(redis_pid) if redis_pid else 0.0
            started = time.perf_counter()
            for first in range(0, PIPELINED_COMMANDS, PIPELINE_BATCH):
                pipeline = client.pipeline(transaction=False)
                for number in range(first, first + PIPELINE_BATCH):
                    command(pipeline, number)
                pipeline.execute()
            pipelined = (time.perf_counter() - started) / PIPELINED_COMMANDS
            server_cpu = tree_cpu_seconds(redis_pid) - server_before if redis_pid else None
            server = server_cpu / PIPELINED_COMMANDS if server_cpu is not None else None
            costs[name] = {
                "round_trip_us": round(round_trip * 1e6, 1),
                "round_trip_server_cpu_us": (
                    round(round_trip_server / ROUND_TRIP_COMMANDS * 1e6, 2)
                    if round_trip_server is not None
                    else None
                ),
                "pipelined_us": round(pipelined * 1e6, 2),
                "server_cpu_us": round(server * 1e6, 2) if server is not None else None,
            }
        executed = commandstats(redis_url)
        for name in commands:
            stats = executed.get(name)
            if stats and stats["calls"]:
                costs[name]["executing_us"] = round(stats["usec"] / stats["calls"], 2)
    finally:
        draining.stop()
        draining.join(timeout=5)
        subscriber.close()
        client.delete(*(f"scale-out-cost:{number}" for number in range(1000)))
    return costs
