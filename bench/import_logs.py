"""``import_chat_logs`` on a synthetic 100k-message file, against a bare load of the same rows, same run.

1. Write a JSONL file of ``--messages`` messages in a temporary folder: logs of ``--per-log``
   messages, two logs (on different days) per person, so half the logs append to a conversation.
   The texts are synthetic (numbered, Korean and English), never shown to anyone.
2. Bare baselines, each reading and ``json.loads``-ing the same file: a psycopg ``COPY`` and a
   psycopg ``executemany`` of the same message rows into a scratch table without indexes.
3. The command itself, in this process (``call_command``), on the embedded PostgreSQL: validation,
   persons, conversations, one transaction per conversation, the messages, the import records.
   Then again on the same file (everything "skipped") and once with ``--dry-run`` on a fresh file.

Prints figures and ends with ONE JSON line of them (seconds, rates, ratios).

    .venv/bin/python bench/import_logs.py [--messages 100000] [--per-log 10]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

from _reply_loop import bench_environment

SEOUL = ZoneInfo("Asia/Seoul")
WORDS = ("뭐해", "밥 먹었어?", "ㅋㅋㅋ", "going to class", "잘자~", "brb", "오늘 진짜 피곤해", "lol same")


def write_synthetic_logs(path: Path, *, messages: int, per_log: int, prefix: str) -> int:
    """``messages`` messages in logs of ``per_log``; two logs per person; returns the number of logs."""
    logs = messages // per_log
    start = datetime(2026, 1, 5, 3, 0, tzinfo=UTC)
    with path.open("w", encoding="utf-8") as handle:
        for number in range(logs):
            person, second_log = divmod(number, 2)
            begins = start + timedelta(days=2 * second_log, minutes=person % 600)
            turns = [
                {
                    "role": "person" if turn % 2 == 0 else "companion",
                    "at": (begins + timedelta(seconds=20 * turn)).astimezone(SEOUL).isoformat(),
                    "text": f"{WORDS[(number + turn) % len(WORDS)]} {number}.{turn}",
                }
                for turn in range(per_log)
            ]
            log = {
                "external_id": f"{prefix}-{number:07d}",
                "companion": "luda",
                "person": f"{prefix}-p{person:06d}",
                "time_zone": "Asia/Seoul",
                "messages": turns,
            }
            handle.write(json.dumps(log, ensure_ascii=False) + "\n")
    return logs


def message_rows(path: Path) -> list[tuple[str, str, str, datetime, str]]:
    rows = []
    with path.open("rb") as handle:
        for raw in handle:
            log = json.loads(raw)
            for message in log["messages"]:
                rows.append(
                    (
                        log["person"],
                        message["role"],
                        message["text"],
                        datetime.fromisoformat(message["at"]),
                        log["external_id"],
                    )
                )
    return rows


SCRATCH_TABLE = """
CREATE TABLE bench_import_scratch (
    id bigserial PRIMARY KEY, person text, role varchar(16), text text,
    created_at timestamptz, log_external_id varchar(100)
)
"""
SCRATCH_COLUMNS = "person, role, text, created_at, log_external_id"


def bare_copy(path: Path) -> tuple[int, float]:
    from django.db import connection

    started = time.perf_counter()
    rows = message_rows(path)
    with connection.cursor() as cursor:
        cursor.execute(SCRATCH_TABLE)
        with cursor.cursor.copy(f"COPY bench_import_scratch ({SCRATCH_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_import_scratch")
    return len(rows), seconds


def bare_executemany(path: Path) -> tuple[int, float]:
    from django.db import connection

    started = time.perf_counter()
    rows = message_rows(path)
    with connection.cursor() as cursor:
        cursor.execute(SCRATCH_TABLE)
        cursor.cursor.executemany(
            f"INSERT INTO bench_import_scratch ({SCRATCH_COLUMNS}) VALUES (%s, %s, %s, %s, %s)", rows
        )
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_import_scratch")
    return len(rows), seconds


def timed_command(path: Path, *options: str) -> tuple[str, float]:
    from django.core.management import call_command

    out = StringIO()
    started = time.perf_counter()
    call_command("import_chat_logs", str(path), *options, stdout=out, stderr=StringIO())
    return out.getvalue().strip(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--per-log", type=int, default=10)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-import-logs-"))
    with bench_environment("import_logs"):
        from django.db import connection

        from chat.models import Companion, ImportedLog, Message

        Companion.objects.create(slug="luda", name="Luda", default_time_zone="Asia/Seoul")
        path, dry_path = folder / "logs.jsonl", folder / "dry.jsonl"
        logs = write_synthetic_logs(path, messages=args.messages, per_log=args.per_log, prefix="bench")
        write_synthetic_logs(dry_path, messages=args.messages, per_log=args.per_log, prefix="dry")
        size_mb = path.stat().st_size / 1e6
        print(f"synthetic file: {logs} logs, {args.messages} messages, {size_mb:.1f} MB", flush=True)

        copied, copy_seconds = bare_copy(path)
        inserted, executemany_seconds = bare_executemany(path)
        assert copied == inserted == args.messages, (copied, inserted)

        summary, import_seconds = timed_command(path)
        assert Message.objects.count() == args.messages
        assert ImportedLog.objects.count() == logs
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        again_summary, again_seconds = timed_command(path)
        assert Message.objects.count() == args.messages
        dry_summary, dry_seconds = timed_command(dry_path, "--dry-run")
        assert Message.objects.count() == args.messages

    print(f"bare json.loads + COPY:        {copied} rows in {copy_seconds:.2f}s")
    print(f"bare json.loads + executemany: {inserted} rows in {executemany_seconds:.2f}s")
    print(f"import_chat_logs:              {import_seconds:.2f}s  ({summary})")
    print(f"import_chat_logs again:        {again_seconds:.2f}s  ({again_summary})")
    print(f"import_chat_logs --dry-run:    {dry_seconds:.2f}s  ({dry_summary})")
    print(
        f"ratio import / COPY: {import_seconds / copy_seconds:.1f}, "
        f"import / executemany: {import_seconds / executemany_seconds:.1f}"
    )
    figures = {
        "messages": args.messages,
        "logs": logs,
        "conversations": logs // 2,
        "copy_s": round(copy_seconds, 3),
        "executemany_s": round(executemany_seconds, 3),
        "import_s": round(import_seconds, 3),
        "import_messages_per_s": round(args.messages / import_seconds),
        "reimport_skipped_s": round(again_seconds, 3),
        "dry_run_s": round(dry_seconds, 3),
        "ratio_import_copy": round(import_seconds / copy_seconds, 2),
        "ratio_import_executemany": round(import_seconds / executemany_seconds, 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
