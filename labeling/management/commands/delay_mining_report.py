"""``manage.py delay_mining_report``: per rule, how many hits annotators accepted vs. rejected."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from labeling.selectors import mining_precision


class Command(BaseCommand):
    help = (
        "Mining precision per rule: accepted (submitted/approved labels) vs. rejected "
        "('no delay needed' skips and reviewer rejections)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        rows = mining_precision()
        header = f"{'rule':<32} {'tasks':>6} {'accepted':>9} {'rejected':>9} {'pending':>8} {'precision':>10}"
        self.stdout.write(header)
        totals = [0, 0, 0, 0]
        for row in rows:
            precision = f"{row.precision:.1%}" if row.precision is not None else "-"
            self.stdout.write(
                f"{row.rule:<32} {row.tasks:>6} {row.accepted:>9} {row.rejected:>9} "
                f"{row.pending:>8} {precision:>10}"
            )
            for index, value in enumerate((row.tasks, row.accepted, row.rejected, row.pending)):
                totals[index] += value
        decided = totals[1] + totals[2]
        overall = f"{totals[1] / decided:.1%}" if decided else "-"
        self.stdout.write(
            f"{'all rules':<32} {totals[0]:>6} {totals[1]:>9} {totals[2]:>9} {totals[3]:>8} {overall:>10}"
        )
