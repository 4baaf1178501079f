"""Mining measured against a labeled log set: conversation-level precision and recall.

The label file has one JSON object per imported chat log::

    {"external_id": "log-0001", "needs_delay": true, "kind": "person_left", "after_message": 5}

and is joined to the imported conversations through ``Message.log_external_id`` (set by
``import_chat_logs``). The unit is the labeled log, one conversation of the log set (the importer
may append several logs of one person to one stored conversation, so the stored conversation is
too coarse): a log is *flagged* when a rule hits on one of its messages. Overall: precision =
flagged and needing a delay / flagged; recall = flagged and needing a delay / needing a delay.
Per rule: the share of the logs it flags that needed a delay. Per kind of miss (the labels'
``kind``): the share of those logs that any rule flagged. Regex-only and regex + semantic are
scanned in the same run, over the same conversations.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from chat.models import Message
from labeling.mining import scan_conversations
from labeling.mining_rules import MISS_KINDS, MiningRule, regex_only
from labeling.semantic import Encoder


class LabelFileError(ValueError):
    """The label file is missing or holds a line that is not a valid label."""


@dataclass(frozen=True)
class LogLabel:
    external_id: str
    needs_delay: bool
    kind: str | None
    after_message: int | None


def read_label_file(path: Path | str) -> dict[str, LogLabel]:
    """Parse and check every line; a problem names the file and the line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise LabelFileError(f"Label file {path} does not exist.") from exc
    labels: dict[str, LogLabel] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LabelFileError(f"{where}: not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("external_id"), str):
            raise LabelFileError(f"{where}: needs an 'external_id' string.")
        needs_delay, kind, after = raw.get("needs_delay"), raw.get("kind"), raw.get("after_message")
        if not isinstance(needs_delay, bool):
            raise LabelFileError(f"{where}: 'needs_delay' must be true or false.")
        if needs_delay and kind not in MISS_KINDS:
            raise LabelFileError(f"{where}: 'kind' must be one of {', '.join(MISS_KINDS)}.")
        if not needs_delay and kind is not None:
            raise LabelFileError(f"{where}: a log that needed no delay has 'kind' null.")
        if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 0):
            raise LabelFileError(f"{where}: 'after_message' must be a message index >= 0 or null.")
        if raw["external_id"] in labels:
            raise LabelFileError(f"{where}: {raw['external_id']!r} is labeled twice.")
        labels[raw["external_id"]] = LogLabel(raw["external_id"], needs_delay, kind, after)
    if not labels:
        raise LabelFileError(f"Label file {path} holds no labels.")
    return labels


def imported_logs(external_ids: Iterable[str]) -> dict[str, int]:
    """External id of each imported log -> the conversation that holds its messages."""
    pairs = (
        Message.objects.filter(log_external_id__in=list(external_ids))
        .values_list("log_external_id", "conversation_id")
        .distinct()
    )
    return {external_id: conversation_id for external_id, conversation_id in pairs if external_id}


@dataclass(frozen=True)
class Ratio:
    hits: int
    total: int

    @property
    def value(self) -> float | None:
        return self.hits / self.total if self.total else None

    def __str__(self) -> str:
        return f"{self.value:.3f} ({self.hits}/{self.total})" if self.total else "- (0/0)"


@dataclass
class Evaluation:
    precision: Ratio
    recall: Ratio
    rule_precision: dict[str, Ratio] = field(default_factory=dict)
    kind_recall: dict[str, Ratio] = field(default_factory=dict)


def evaluate(
    *, labels: Mapping[str, LogLabel], flagged: Mapping[str, set[str]], rules: Sequence[str]
) -> Evaluation:
    """Log-level figures; ``labels`` and ``flagged`` (rule names that hit) are keyed by external id."""
    positives = {key for key, label in labels.items() if label.needs_delay}
    hit = {key for key, names in flagged.items() if names and key in labels}
    evaluation = Evaluation(
        precision=Ratio(len(hit & positives), len(hit)), recall=Ratio(len(hit & positives), len(positives))
    )
    for rule in rules:
        by_rule = {key for key in hit if rule in flagged[key]}
        evaluation.rule_precision[rule] = Ratio(len(by_rule & positives), len(by_rule))
    for kind in MISS_KINDS:
        of_kind = {key for key in positives if labels[key].kind == kind}
        evaluation.kind_recall[kind] = Ratio(len(of_kind & hit), len(of_kind))
    return evaluation


@dataclass
class LabeledReport:
    conversations: int  # labeled logs found among the imported messages
    positives: int
    not_imported: list[str]
    modes: dict[str, Evaluation]  # "regex-only", "regex + semantic"


def report_against_labels(
    *, labels: Mapping[str, LogLabel], rules: Sequence[MiningRule], encoder: Encoder | None = None
) -> LabeledReport:
    """Scan the labeled conversations twice (regex only, then with the example phrases); no tasks."""
    logs = imported_logs(labels)
    present = {external_id: labels[external_id] for external_id in logs}
    modes: dict[str, Evaluation] = {}
    for mode, mode_rules, semantic in (
        ("regex-only", regex_only(list(rules)), False),
        ("regex + semantic", list(rules), True),
    ):
        flagged: dict[str, set[str]] = {}
        for _, hits in scan_conversations(
            rules=mode_rules, semantic=semantic, encoder=encoder, conversation_ids=sorted(set(logs.values()))
        ):
            for hit in hits:
                external_id = hit.trigger_message.log_external_id
                if external_id in present:
                    flagged.setdefault(external_id, set()).add(hit.rule)
        modes[mode] = evaluate(labels=present, flagged=flagged, rules=[rule.name for rule in rules])
    return LabeledReport(
        conversations=len(present),
        positives=sum(1 for label in present.values() if label.needs_delay),
        not_imported=sorted(set(labels) - set(present)),
        modes=modes,
    )
