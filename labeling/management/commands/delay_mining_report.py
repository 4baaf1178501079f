"""``manage.py delay_mining_report [--labels FILE] [--rules FILE] [--chart FILE]``.

Always: per rule, how many hits annotators accepted vs. rejected. With ``--chart`` or
``--labels`` also the labels' delay-bucket distribution (``--chart`` writes it as an SVG too).
With ``--labels``: precision and recall per labeled log against a labeled log set (see
:mod:`labeling.mining_report`), regex-only and regex + semantic side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from labeling.charts import bar_chart_svg
from labeling.mining_report import LabeledReport, LabelFileError, read_label_file, report_against_labels
from labeling.mining_rules import DEFAULT_RULES_FILE, MiningRulesError, load_rules
from labeling.selectors import label_bucket_counts, mining_precision

CHART_TITLE = "Delay buckets of the labels"


class Command(BaseCommand):
    help = (
        "Mining precision per rule: accepted (submitted/approved labels) vs. rejected "
        "('no delay needed' skips and reviewer rejections); with --labels, precision and recall "
        "against a labeled log set, regex-only and regex + semantic."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--labels", help="Labeled log set (JSONL, joined by Message.log_external_id).")
        parser.add_argument("--rules", default=str(DEFAULT_RULES_FILE), help="Rules file (JSON).")
        parser.add_argument("--chart", help="Also write the delay-bucket chart as an SVG file here.")

    def handle(self, *args: Any, **options: Any) -> None:
        chart_path = Path(options["chart"]) if options["chart"] else None
        if chart_path is not None and not chart_path.parent.is_dir():
            raise CommandError(f"The folder {chart_path.parent} does not exist.")
        labeled = None
        if options["labels"]:
            try:
                labels = read_label_file(options["labels"])
                rules = load_rules(options["rules"])
            except (LabelFileError, MiningRulesError) as exc:
                raise CommandError(str(exc)) from exc
            labeled = report_against_labels(labels=labels, rules=rules)
        self._precision_table()
        if chart_path is not None or labeled is not None:
            self._buckets(chart_path)
        if labeled is not None:
            self._labeled(labeled, options["labels"])

    def _precision_table(self) -> None:
        header = f"{'rule':<32} {'tasks':>6} {'accepted':>9} {'rejected':>9} {'pending':>8} {'precision':>10}"
        self.stdout.write(header)
        totals = [0, 0, 0, 0]
        for row in mining_precision():
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

    def _buckets(self, chart_path: Path | None) -> None:
        counts = label_bucket_counts()
        largest = max((count for _, count in counts), default=0)
        self.stdout.write("")
        self.stdout.write(f"{CHART_TITLE}:")
        for name, count in counts:
            bar = "#" * round(40 * count / largest) if largest else ""
            self.stdout.write(f"  {name:<12} {count:>5} {bar}")
        if chart_path is not None:
            chart_path.write_text(bar_chart_svg(counts, title=CHART_TITLE) + "\n", encoding="utf-8")
            self.stdout.write(f"  chart: {chart_path}")

    def _labeled(self, report: LabeledReport, source: str) -> None:
        self.stdout.write("")
        self.stdout.write(
            f"Against {source}: {report.conversations} labeled logs (conversations) imported, "
            f"{report.positives} needed a delay."
        )
        if report.not_imported:
            shown = ", ".join(report.not_imported[:5]) + (" ..." if len(report.not_imported) > 5 else "")
            self.stdout.write(f"  {len(report.not_imported)} labeled logs are not imported, skipped: {shown}")
        modes = list(report.modes)
        self.stdout.write(
            f"{'per labeled log (conversation)':<34}" + "".join(f"{mode:>22}" for mode in modes)
        )
        first = report.modes[modes[0]]
        lines: list[tuple[str, str]] = [("precision", "precision"), ("recall", "recall")]
        lines += [(f"recall {kind}", f"kind:{kind}") for kind in first.kind_recall]
        lines += [(f"precision {rule}", f"rule:{rule}") for rule in first.rule_precision]
        for title, key in lines:
            cells = []
            for mode in modes:
                evaluation = report.modes[mode]
                if key == "precision":
                    ratio = evaluation.precision
                elif key == "recall":
                    ratio = evaluation.recall
                elif key.startswith("kind:"):
                    ratio = evaluation.kind_recall[key[5:]]
                else:
                    ratio = evaluation.rule_precision[key[5:]]
                cells.append(f"{ratio!s:>22}")
            self.stdout.write(f"{title:<34}" + "".join(cells))
