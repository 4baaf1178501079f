"""Scale-out on one machine: message + reply throughput at 1 and 2 web processes, and a web process killed.

One PostgreSQL and one Redis (``DATABASE_URL`` / ``REDIS_URL`` when set, else the embedded
PostgreSQL under ``var/`` in a bench database of its own, recreated and dropped, and a private
embedded Redis) serve:

- 2 web processes: uvicorn serving ``companion.asgi:application`` as ``make run`` starts it
  (``companion.stack.web_command``), on two ports;
- 2 delivery workers (``--queues=delivery,celery``), 1 planner (``--queues=plan``) and beat with
  the reply dispatcher every second (the recovery path for a plan task lost with a web process);
- a deterministic reply source (``bench/_scale_out_source.py`` through ``SCHEDULING_REPLY_SOURCE``)
  that answers at once with a short text, time scaled by ``REPLY_TIME_SCALE``, no plan debounce
  and follow-ups off for the bench's companion, so one message gets exactly one reply and the
  bench measures the loop, not the model.

Each of ``--people`` people (a user, a token and a conversation each) sends ``--messages``
messages over a WebSocket in a closed loop: send, wait for its own ``message.created`` and for the
companion's reply, send the next. Phases, each with people of its own (after a short warm-up):

1. ``web1``: every socket on one web process;
2. ``web2``: the same load dealt over both (the ratio web2/web1 of replies/s is the scale-out);
   ``--rounds`` rounds of both, in the order 1, 2, 2, 1, … so that the machine's drifting other
   load favours neither;
3. ``kill``: dealt over both, and one web process SIGKILLed after ``--kill-after`` (replies, or
   seconds with an ``s``): its people reconnect to the other one with ``?after=<last id>``, resend
   a message whose echo never came (same ``client_id``) and go on.

Afterwards every conversation's messages in the database are compared with what its client saw
(ids, each once): ``lost`` (stored, never seen), ``duplicated`` (more than one companion message
for one person message, a ``scheduled_reply_id`` or ``client_id`` stored twice, or the client
seeing two companion ids for one message). Per phase it reads the load average, the CPU seconds
of every child (``/proc``, with their descendants: PostgreSQL's backends, the workers' pool
processes) and Redis' command counts (``INFO commandstats``); at the end it times PUBLISH and SET
against the same Redis (redis-py: round trips, and pipelined batches for the server's own cost).
Ends with one JSON line.

    .venv/bin/python bench/scale_out.py       # --people 20 --messages 20 --rounds 2 --kill-after 200: ~2 min
    .venv/bin/python bench/scale_out.py --people 40 --messages 30 --kill-after 10s --seed 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from _scale_out_clients import Exchange, Person, Progress, run_people
from _scale_out_redis import commandstats, commandstats_reset, redis_command_costs
from _scale_out_stack import (
    Child,
    Engines,
    bench_engines,
    cpu_snapshot,
    kill_now,
    spawn_beat,
    spawn_web,
    spawn_worker,
    stop_all,
    tail,
    tree_cpu_seconds,
    wait_ready,
)
from _scale_out_verify import PhaseCheck, check_phase

REPLY_SOURCE = "bench._scale_out_source.instant_reply_source"
REPLY_TIMEOUT_SECONDS = 120.0  # above the dispatcher's grace for a lost plan task (debounce + 60 s)
WARMUP_PEOPLE = 4
WARMUP_MESSAGES = 3


@dataclass
class Phase:
    """One measured load: who took part, how long it took, what the machine spent on it."""

    name: str
    web_processes: int
    people: list[Person]
    seconds: float
    cpu_seconds: dict[str, float]
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    redis_commands: dict[str, dict[str, float]]
    check: PhaseCheck
    killed: str | None = None
    killed_after_replies: int | None = None
    killed_after_seconds: float | None = None
    round_replies_per_s: list[float] | None = None

    @property
    def exchanges(self) -> list[Exchange]:
        return [exchange for person in self.people for exchange in person.exchanges]

    @property
    def messages(self) -> int:
        return sum(1 for exchange in self.exchanges if exchange.message_id is not None)

    @property
    def replies(self) -> int:
        return sum(1 for exchange in self.exchanges if exchange.reply_id is not None)

    def figures(self) -> dict[str, Any]:
        echo = [e.echo_seconds for e in self.exchanges if e.echo_seconds is not None]
        reply = [e.reply_seconds for e in self.exchanges if e.reply_seconds is not None]
        total_cpu = sum(self.cpu_seconds.values())
        calls = sum(stats["calls"] for stats in self.redis_commands.values())
        usec = sum(stats["usec"] for stats in self.redis_commands.values())
        figures: dict[str, Any] = {
            "web_processes": self.web_processes,
            "people": len(self.people),
            "messages": self.messages,
            "replies": self.replies,
            "seconds": round(self.seconds, 2),
            "messages_per_s": round(self.messages / self.seconds, 1),
            "replies_per_s": round(self.replies / self.seconds, 1),
            "echo_ms": latency_summary(echo),
            "reply_ms": latency_summary(reply),
            "reconnects": sum(person.reconnects for person in self.people),
            "resends": sum(person.resends for person in self.people),
            "repeated_deliveries": sum(person.deliveries - len(person.seen) for person in self.people),
            "failed_exchanges": sum(1 for e in self.exchanges if e.error is not None),
            "load_before": [round(value, 2) for value in self.load_before],
            "load_after": [round(value, 2) for value in self.load_after],
            "cpu_s": {name: round(seconds, 2) for name, seconds in self.cpu_seconds.items()},
            "cpu_ms_per_reply": round(total_cpu * 1000 / max(1, self.replies), 2),
            "redis_calls_per_reply": round(calls / max(1, self.replies), 1),
            "redis_usec_per_reply": round(usec / max(1, self.replies), 1),
            "redis_calls_per_reply_by_command": {
                name: round(stats["calls"] / max(1, self.replies), 2)
                for name, stats in sorted(self.redis_commands.items(), key=lambda item: -item[1]["calls"])
                if stats["calls"] >= self.replies / 10 and name not in ("config|resetstat", "info")
            },
            **self.check.figures(),
        }
        if self.round_replies_per_s is not None:
            figures["replies_per_s_by_round"] = self.round_replies_per_s
        if self.killed is not None:
            figures["killed"] = self.killed
            figures["killed_after_replies"] = self.killed_after_replies
            figures["killed_after_s"] = self.killed_after_seconds
        return figures


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    if not seconds:
        return {"p50": float("nan"), "p99": float("nan")}
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"p50": round(statistics.median(ordered) * 1000, 1), "p99": round(p99 * 1000, 1)}


def parse_kill_after(value: str) -> tuple[str, float]:
    """``"200"`` → after 200 replies of the kill phase; ``"10s"`` → 10 seconds into it."""
    if value.endswith("s"):
        return "seconds", float(value[:-1])
    return "replies", float(int(value))


# --- the run ------------------------------------------------------------------------------------


def make_people(tag: str, count: int, ports: Sequence[int], rng: random.Random) -> list[Person]:
    """``count`` people with a token and a conversation each, dealt over ``ports`` (home first)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from chat.models import Companion, Conversation

    companion, _ = Companion.objects.get_or_create(
        slug="bench-scale-out",
        defaults={"name": "Luda", "follow_ups_enabled": False, "max_bubbles": 1},
    )
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"scale-{tag}-{number}", password="!") for number in range(count)]
    )
    tokens = Token.objects.bulk_create([Token(user=user, key=Token.generate_key()) for user in users])
    conversations = Conversation.objects.bulk_create(
        [Conversation(person=user, companion=companion, time_zone="UTC") for user in users]
    )
    homes = [number % len(ports) for number in range(count)]
    rng.shuffle(homes)
    return [
        Person(
            number=number,
            conversation_id=conversation.pk,
            token=token.key,
            ports=[ports[(home + offset) % len(ports)] for offset in range(len(ports))],
        )
        for number, (conversation, token, home) in enumerate(zip(conversations, tokens, homes, strict=True))
    ]


def run_phase(
    name: str,
    *,
    ports: Sequence[int],
    web_processes: int,
    people_count: int,
    messages: int,
    engines: Engines,
    named_pids: dict[str, int],
    rng: random.Random,
    fault: Callable[[Progress], Coroutine[Any, Any, None]] | None = None,
    fault_after_replies: int | None = None,
    last_known_cpu: dict[str, float] | None = None,
) -> Phase:
    """``people_count`` new people on the first ``web_processes`` ports, measured and checked."""
    people = make_people(name, people_count, ports[:web_processes], rng)
    commandstats_reset(engines.redis_url)
    load_before = os.getloadavg()
    cpu_before = cpu_snapshot(named_pids)
    progress = Progress(threshold=fault_after_replies)
    print(
        f"[scale_out] {name}: {people_count} people x {messages} messages on {web_processes} web", flush=True
    )
    seconds = asyncio.run(
        run_people(
            people,
            messages=messages,
            tag=name,
            reply_timeout=REPLY_TIMEOUT_SECONDS,
            progress=progress,
            fault=fault,
        )
    )
    cpu_after = cpu_snapshot(named_pids, last_known_cpu)
    load_after = os.getloadavg()
    return Phase(
        name=name,
        web_processes=web_processes,
        people=people,
        seconds=seconds,
        cpu_seconds={key: cpu_after[key] - cpu_before.get(key, 0.0) for key in cpu_after},
        load_before=load_before,
        load_after=load_after,
        redis_commands=commandstats(engines.redis_url),
        check=check_phase(people),
    )


def combine(name: str, phases: Sequence[Phase]) -> Phase:
    """The rounds of one load as one phase: people, seconds, CPU and Redis commands summed."""
    redis_commands: dict[str, dict[str, float]] = {}
    for phase in phases:
        for command, stats in phase.redis_commands.items():
            total = redis_commands.setdefault(command, {"calls": 0.0, "usec": 0.0})
            total["calls"] += stats["calls"]
            total["usec"] += stats["usec"]
    check = phases[0].check
    for phase in phases[1:]:
        check = check.plus(phase.check)
    return Phase(
        name=name,
        web_processes=phases[0].web_processes,
        people=[person for phase in phases for person in phase.people],
        seconds=sum(phase.seconds for phase in phases),
        cpu_seconds={key: sum(phase.cpu_seconds[key] for phase in phases) for key in phases[0].cpu_seconds},
        load_before=phases[0].load_before,
        load_after=phases[-1].load_after,
        redis_commands=redis_commands,
        check=check,
        round_replies_per_s=[round(phase.replies / phase.seconds, 1) for phase in phases],
    )


def measure(options: argparse.Namespace, engines: Engines, children: list[Child]) -> dict[str, Any]:
    """Warm up, then the phases web1, web2 and kill; the figures for the JSON line."""
    rng = random.Random(options.seed)
    webs = [child for child in children if child.port is not None]
    ports = [child.port for child in webs if child.port is not None]
    named_pids = {child.name: child.popen.pid for child in children}
    if engines.postgres_pid is not None:
        named_pids["postgres"] = engines.postgres_pid
    if engines.redis_pid is not None:
        named_pids["redis"] = engines.redis_pid
    shared: dict[str, Any] = {"ports": ports, "engines": engines, "named_pids": named_pids, "rng": rng}
    load = {"people_count": options.people, "messages": options.messages}

    run_phase("warmup", web_processes=2, people_count=WARMUP_PEOPLE, messages=WARMUP_MESSAGES, **shared)
    rounds: dict[str, list[Phase]] = {"web1": [], "web2": []}
    for round_number in range(options.rounds):
        # web1, web2, then web2, web1: a machine whose other load drifts favours neither.
        order = ("web1", "web2") if round_number % 2 == 0 else ("web2", "web1")
        for name in order:
            web_processes = 1 if name == "web1" else 2
            rounds[name].append(
                run_phase(f"{name}-r{round_number}", web_processes=web_processes, **load, **shared)
            )
    phases = {name: combine(name, measured) for name, measured in rounds.items()}

    victim = webs[rng.randrange(len(webs))]
    kill_kind, kill_value = parse_kill_after(options.kill_after)
    killed: dict[str, Any] = {}
    last_known_cpu: dict[str, float] = {}

    async def kill(progress: Progress) -> None:
        started = time.perf_counter()
        if kill_kind == "seconds":
            await asyncio.sleep(kill_value)  # when to inject the fault; nothing is checked by time
        else:
            await progress.reached.wait()
        last_known_cpu[victim.name] = tree_cpu_seconds(victim.popen.pid)
        await asyncio.to_thread(kill_now, victim)
        killed.update(replies=progress.replies, seconds=round(time.perf_counter() - started, 2))
        print(f"[scale_out] kill: SIGKILL {victim.name} after {progress.replies} replies", flush=True)

    phase = run_phase(
        "kill",
        web_processes=2,
        fault=kill,
        fault_after_replies=int(kill_value) if kill_kind == "replies" else None,
        last_known_cpu=last_known_cpu,
        **load,
        **shared,
    )
    if killed:
        phase.killed = victim.name
        phase.killed_after_replies = killed["replies"]
        phase.killed_after_seconds = killed["seconds"]
    phases["kill"] = phase
    return report(options, phases, redis_command_costs(engines.redis_url, engines.redis_pid))


def report(
    options: argparse.Namespace, phases: dict[str, Phase], redis_costs: dict[str, Any]
) -> dict[str, Any]:
    for phase in phases.values():
        f = phase.figures()
        print(
            f"{phase.name:<5} {f['web_processes']} web  {f['messages_per_s']:>6.1f} msg/s  "
            f"{f['replies_per_s']:>6.1f} replies/s  "
            f"echo p50/p99 {f['echo_ms']['p50']}/{f['echo_ms']['p99']} ms  "
            f"reply p50/p99 {f['reply_ms']['p50']}/{f['reply_ms']['p99']} ms  "
            f"CPU {f['cpu_ms_per_reply']} ms/reply  lost {f['lost']} duplicated {f['duplicated']} "
            f"reconnects {f['reconnects']}  load {f['load_after'][0]}"
        )
    web1, web2, killed = (phases[name].figures() for name in ("web1", "web2", "kill"))
    ratio = web2["replies_per_s"] / web1["replies_per_s"] if web1["replies_per_s"] else float("nan")
    print(f"ratio 2 web / 1 web (replies/s): {ratio:.2f}x")
    print(f"redis: {json.dumps(redis_costs)}")
    return {
        "bench": "scale_out",
        "people": options.people,
        "messages": options.messages,
        "seed": options.seed,
        "cpus": os.cpu_count(),
        "web1": web1,
        "web2": web2,
        "kill": killed,
        "rounds": options.rounds,
        "ratio_web2_web1_replies": round(ratio, 3),
        "ratio_web2_web1_messages": round(web2["messages_per_s"] / web1["messages_per_s"], 3),
        "lost": killed["lost"] + web1["lost"] + web2["lost"],
        "duplicated": killed["duplicated"] + web1["duplicated"] + web2["duplicated"],
        "reconnects": killed["reconnects"],
        "loadavg_end": [round(value, 2) for value in os.getloadavg()],
        "redis_cost": redis_costs,
    }


def start_children(options: argparse.Namespace, engines: Engines, children: list[Child]) -> None:
    """Spawn the stack into ``children`` (so that the caller can stop whatever started), then wait."""
    from ws_ingest import free_port

    env, logs = engines.env, engines.logs
    for name in ("web-a", "web-b"):
        children.append(spawn_web(name, free_port(), env, logs))
    for number in (1, 2):
        children.append(
            spawn_worker(f"delivery{number}", "delivery,celery", options.delivery_concurrency, env, logs)
        )
    children.append(spawn_worker("planner", "plan", options.planner_concurrency, env, logs))
    children.append(spawn_beat(env, logs))
    wait_ready(children)
    print(
        f"[scale_out] started: {', '.join(f'{c.name} ({c.popen.pid})' for c in children)}; logs {logs}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20, help="people (sockets) per phase")
    parser.add_argument("--messages", type=int, default=20, help="messages per person per phase")
    parser.add_argument(
        "--kill-after",
        default=None,
        help="kill a web process after this many replies of the kill phase, or seconds with 's' "
        "(default: half the phase's replies)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of web1 and web2, alternating their order (ABBA)"
    )
    parser.add_argument("--seed", type=int, default=0, help="deals people to web processes, picks the victim")
    parser.add_argument("--time-scale", type=float, default=0.01, help="REPLY_TIME_SCALE of the stack")
    parser.add_argument("--debounce", type=float, default=0.0, help="SCHEDULING_PLAN_DEBOUNCE_SECONDS")
    parser.add_argument("--planner-concurrency", type=int, default=2, help="as docker-compose's planner")
    parser.add_argument("--delivery-concurrency", type=int, default=1, help="per delivery worker")
    options = parser.parse_args()
    if not (1 <= options.people <= 500 and 1 <= options.messages <= 10_000):
        raise SystemExit("--people must be 1..500 and --messages 1..10000")
    if options.kill_after is None:
        options.kill_after = str(options.people * options.messages // 2)

    def stop_on_signal(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    child_settings = {
        "SCHEDULING_REPLY_SOURCE": REPLY_SOURCE,
        "REPLY_TIME_SCALE": str(options.time_scale),
        "SCHEDULING_PLAN_DEBOUNCE_SECONDS": str(options.debounce),
        # A socket's send spends the person's REST budget; the bench's people send faster than
        # a person types.
        "API_THROTTLE_USER": "1000000/minute",
    }
    children: list[Child] = []
    with bench_engines(child_settings) as engines:
        try:
            start_children(options, engines, children)
            figures = measure(options, engines, children)
        except BaseException:
            for child in children:
                if child.popen.poll() not in (None, 0, -signal.SIGKILL):
                    print(
                        f"--- {child.name} exited {child.popen.returncode}:\n{tail(child.log)}",
                        file=sys.stderr,
                    )
            raise
        finally:
            stop_all(children)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
