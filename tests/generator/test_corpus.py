"""The corpus: hand-written data files, composed reproducibly, with a held-out split really held out."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from companion.generator import dialogue_from_json
from companion.generator.corpus import (
    SCENARIO_WEIGHTS,
    CorpusConfig,
    Split,
    _typo,
    build_corpus,
    held_out,
    variants,
)
from companion.generator.corpus_data import (
    CORPUS_DIR,
    FOLLOW_UPS,
    CorpusDataError,
    Intent,
    companion_lines,
    load_intents,
)

CONFIG = CorpusConfig(n_train=3000, n_val=600, seed=7)
SEND_OFFS = json.loads((CORPUS_DIR / "people.json").read_text(encoding="utf-8"))["send_offs"]
SLOTTED = ("busy_for", "busy_until", "wake_at")


@pytest.fixture(scope="module")
def corpus() -> dict[Split, list[dict[str, Any]]]:
    return build_corpus(CONFIG)


def delay_minutes(row: dict) -> float:
    dialogue, reply = dialogue_from_json(row)
    assert reply is not None
    # In UTC: two datetimes of one zone subtract by their wall clocks, wrong across a DST change.
    return (reply[0].astimezone(UTC) - dialogue.last_at.astimezone(UTC)) / timedelta(minutes=1)


def test_same_seed_same_corpus_other_seed_other_corpus(corpus: dict[str, list[dict]]) -> None:
    assert build_corpus(CONFIG) == corpus
    assert build_corpus(CorpusConfig(n_train=3000, n_val=600, seed=8))["train"] != corpus["train"]


def test_the_data_files_hold_the_issue_s_line_counts() -> None:
    intents = load_intents()
    person = {line for intent in intents for line in intent.person}
    companion = {
        line for intent in intents for lines in (intent.announce, *intent.replies.values()) for line in lines
    }

    assert len(person) >= 3000
    assert len(companion) >= 2000
    assert {intent.lang for intent in intents} == {"en", "ko"}
    assert all("senior" in intent.replies for intent in intents if intent.lang == "ko")
    follow_ups = Counter((intent.timing, intent.lang) for intent in intents if intent.timing in FOLLOW_UPS)
    assert set(follow_ups) == {(timing, lang) for timing in FOLLOW_UPS for lang in ("en", "ko")}
    assert sum(follow_ups.values()) >= 40
    bubbled = [intent for intent in intents if intent.bubbles]
    assert len(bubbled) >= 40 and {intent.lang for intent in bubbled} == {"en", "ko"}
    # 4-8 pairs were written per register; a few lost one to the dev-set overlap deletion
    assert all(3 <= len(pairs) <= 8 for intent in bubbled for pairs in intent.bubbles.values())
    assert all(set(companion_lines(intent)) <= companion | _extra_lines(intent) for intent in intents)


def _extra_lines(intent: Intent) -> set[str]:
    answers = {line for lines in intent.answers.values() for line in lines}
    return answers | {line for pairs in intent.bubbles.values() for pair in pairs for line in pair}


def test_held_out_split_uses_sentences_training_never_saw(corpus: dict[str, list[dict]]) -> None:
    def person_texts(rows: list[dict]) -> set[str]:
        # The decisive turn of a slotted intent is its line with the slot filled in (its template
        # is what the split hashes), so only the other turns are compared as they are; in a
        # follow_event conversation that line comes just before the companion's answer.
        def unslotted(row: dict) -> list[dict]:
            if row["scenario"] in SLOTTED:
                return row["turns"][:-1]
            if row["scenario"] == "follow_event":
                return row["turns"][:-2] + row["turns"][-1:]
            return row["turns"]

        return {turn["text"] for row in rows for turn in unslotted(row) if turn["role"] == "person"}

    train, val = person_texts(corpus["train"]), person_texts(corpus["val"])

    assert len(val) > 500
    assert val & train == set()
    assert all(held_out(text) for text in val)


def test_held_out_variants_come_from_lines_training_also_uses() -> None:
    lines = [(line, intent.lang) for intent in load_intents() for line in intent.person]
    only_held_out = 0
    for line, lang in lines:
        # A typo makes a new word on purpose ("ilke"); every other variant only adds noise words.
        options = [v for v in variants(line, lang) if v != _typo(line) or v == line]
        train = [v for v in options if not held_out(v)]
        if not train:
            only_held_out += 1
            continue
        train_words = {w for v in train for w in re.findall(r"[^\W\d_]+", v.lower())}
        for variant in options:
            if held_out(variant) and lang == "en":
                assert set(re.findall(r"[^\W\d_]+", variant.lower())) <= train_words | _noise_words(), variant
    # A line is unseen in training only when every one of its variants hashes into val.
    assert only_held_out / len(lines) < 0.02


def _noise_words() -> set[str]:
    people = json.loads(
        (Path(__file__).parents[2] / "companion/generator/data/corpus/people.json").read_text()
    )
    noise = people["noise"]["en"]
    return {
        w for text in noise["prefixes"] + noise["suffixes"] for w in re.findall(r"[^\W\d_]+", text.lower())
    }


def test_every_timing_and_language_is_in_both_splits(corpus: dict[str, list[dict]]) -> None:
    lang = {intent.name: intent.lang for intent in load_intents()}
    for rows in corpus.values():
        pairs = Counter((row["scenario"], lang[row["intent"]]) for row in rows)
        assert set(pairs) == {(scenario, lang) for scenario in SCENARIO_WEIGHTS for lang in ("en", "ko")}
        crosses_midnight = [r for r in rows if r["reply"]["at"][:10] != r["turns"][-1]["at"][:10]]
        assert {r["scenario"] for r in crosses_midnight} >= {
            "good_night", "companion_sleeps", "wake_at", "follow_morning", "no_follow_up"
        }  # fmt: skip
    weights = sum(SCENARIO_WEIGHTS.values())
    instant_weight = sum(SCENARIO_WEIGHTS[s] for s in ("instant", "complaint", "back")) / weights
    follow_weight = sum(SCENARIO_WEIGHTS[s] for s in FOLLOW_UPS) / weights
    assert 0.17 <= follow_weight <= 0.19  # follow-ups are about 18% of the examples
    instant = sum(row["scenario"] in ("instant", "complaint", "back") for row in corpus["train"])
    follow = sum(row["scenario"] in FOLLOW_UPS for row in corpus["train"])
    assert abs(instant / len(corpus["train"]) - instant_weight) < 0.04
    assert abs(follow / len(corpus["train"]) - follow_weight) < 0.03


def test_follow_ups_end_with_the_companion_s_answer_to_the_person(corpus: dict[str, list[dict]]) -> None:
    intents = {intent.name: intent for intent in load_intents()}
    follow_ups = endings = borrowings = 0
    for row in corpus["train"] + corpus["val"]:
        last, before = row["turns"][-1], row["turns"][-2] if len(row["turns"]) > 1 else None
        if row["scenario"] not in FOLLOW_UPS:
            assert last["role"] == "person", row
            continue
        follow_ups += 1
        intent, group = intents[row["intent"]], (row.get("person") or {}).get("age_group")
        assert before is not None and before["role"] == "person", row
        # a no_follow_up conversation may end on an exchange of everyday chat (its "ending" intent)
        ending = intents[row["ending"]] if "ending" in row else None
        borrowed = intents[row["borrowed"]] if "borrowed" in row else None
        if borrowed is not None:
            # lines of a delayed answer's intent, answered with a send-off of people.json
            borrowings += 1
            kind = "night" if row["scenario"] == "follow_morning" else "leave"
            by_register = SEND_OFFS[kind][intent.lang]
            answers = by_register.get(group or "adult") or by_register["adult"]
            assert (row["scenario"], borrowed.timing) in {
                ("follow_after", "person_leaves"),
                ("follow_morning", "good_night"),
            }, row
            assert any(before["text"] in variants(line, borrowed.lang) for line in borrowed.person), row
            assert row["reply"]["text"] in borrowed.replies_for(group), row
        elif ending is not None:
            answers = ending.replies_for(group)
        else:
            answers = intent.answers_for(group)
        assert last["role"] == "companion" and last["text"] in answers, row
        gap = datetime.fromisoformat(last["at"]) - datetime.fromisoformat(before["at"])
        assert timedelta(0) <= gap <= timedelta(minutes=1), row
        if borrowed is not None:
            continue
        if ending is not None:
            endings += 1
            assert row["scenario"] == "no_follow_up" and ending.timing == "instant", row
            assert any(before["text"] in variants(line, ending.lang) for line in ending.person), row
        elif row["scenario"] != "follow_event":
            assert any(before["text"] in variants(line, intent.lang) for line in intent.person), row
        assert row["reply"]["text"] in intent.replies_for(group) and "more" not in row["reply"], row
    assert follow_ups > 400
    no_follow_ups = sum(row["scenario"] == "no_follow_up" for row in corpus["train"] + corpus["val"])
    assert 0.6 * no_follow_ups <= endings <= 0.8 * no_follow_ups  # 70% end on everyday chat
    borrowing = sum(
        row["scenario"] in ("follow_after", "follow_morning") for row in corpus["train"] + corpus["val"]
    )
    assert 0.4 * borrowing <= borrowings <= 0.6 * borrowing  # half say it with a delayed answer's lines


_EVENT_CLOCK = {
    "en": re.compile(r"\b(\d{1,2})(?::(\d{2}))? ?(am|pm)\b"),
    "ko": re.compile(r"(오전|오후) (\d{1,2})시( 반)?"),
}


def _event_clock(text: str, lang: str) -> tuple[int, int]:
    """The clock time a follow_event line names ("3:30 pm", "오후 3시 반"), 24-hour."""
    found = _EVENT_CLOCK[lang].search(text)
    assert found is not None, text
    if lang == "en":
        hour, minute, pm = int(found[1]) % 12, int(found[2] or 0), found[3] == "pm"
    else:
        hour, minute, pm = int(found[2]) % 12, 30 if found[3] else 0, found[1] == "오후"
    return hour + 12 * pm, minute


def _local(row: dict, at: str) -> datetime:
    """A wall-clock ``at`` of a row as an aware datetime in the row's zone."""
    return datetime.fromisoformat(at).replace(tzinfo=ZoneInfo(row["time_zone"]))


def _follow_up_delay_is_right(
    row: dict, intent: Intent, delay: float, borrowed: Intent | None = None
) -> bool:
    """``delay``: minutes from the companion's answer (the last turn) to its follow-up."""
    scenario, reply_at = row["scenario"], _local(row, row["reply"]["at"])
    if scenario == "follow_morning":
        return "07:20" <= row["reply"]["at"][11:] < "09:30" and 0 < delay < 24 * 60
    if scenario == "follow_after":
        minutes = intent.minutes if borrowed is None else borrowed.minutes
        assert minutes is not None
        return minutes[0] <= delay <= minutes[1]
    if scenario == "no_follow_up":
        days = (reply_at.date() - _local(row, row["turns"][-1]["at"]).date()).days
        return 2 <= days <= 4 and "10:00" <= row["reply"]["at"][11:] <= "21:00" and delay > 24 * 60
    assert scenario == "follow_event" and intent.minutes is not None
    said = datetime.fromisoformat(row["turns"][-2]["at"])
    hour, minute = _event_clock(row["turns"][-2]["text"], intent.lang)
    event = datetime.combine(said.date(), time(hour, minute))
    event += timedelta(days=1) if event <= said else timedelta(0)
    ahead = (event - said) / timedelta(minutes=1)  # on the wall clock, as the person says it
    after = (reply_at - event.replace(tzinfo=ZoneInfo(row["time_zone"]))) / timedelta(minutes=1)
    return minute in (0, 30) and 60 <= ahead <= 360 and intent.minutes[0] <= after <= intent.minutes[1]


def test_reply_times_follow_the_timing_rules(corpus: dict[str, list[dict]]) -> None:
    intents = {intent.name: intent for intent in load_intents()}
    fixed = {"instant": (0, 0), "complaint": (0, 0), "back": (0, 0), "bye": (150, 300), "abuse": (150, 330),
             "leave_alone": (180, 420)}  # fmt: skip
    for row in corpus["train"]:
        delay, scenario, intent = delay_minutes(row), row["scenario"], intents[row["intent"]]
        if scenario in fixed:
            low, high = fixed[scenario]
            assert low <= delay <= high, row
        elif scenario in ("person_leaves", "companion_leaves"):
            assert intent.minutes is not None
            assert intent.minutes[0] <= delay <= intent.minutes[1], row
        elif scenario in ("good_night", "companion_sleeps"):
            assert "07:20" <= row["reply"]["at"][11:] < "09:30", row
        elif scenario in FOLLOW_UPS:
            borrowed = intents[row["borrowed"]] if "borrowed" in row else None
            assert _follow_up_delay_is_right(row, intent, delay, borrowed), row
        elif scenario == "busy_for":
            assert 15 + 3 <= delay <= 300 + 8, row
        elif scenario == "busy_until":
            assert row["reply"]["at"][14:] in {f"{m:02d}" for m in (*range(3, 9), *range(33, 39))}, row
        else:
            assert scenario == "wake_at"
            assert row["reply"]["at"][15:] in "05" and 0 < delay <= 24 * 60, row


def test_replies_follow_the_age_group(corpus: dict[str, list[dict]]) -> None:
    intents = {intent.name: intent for intent in load_intents()}
    checked = 0
    for row in corpus["train"]:
        if row["scenario"] == "wake_at":  # its replies carry the filled {time} slot
            continue
        group = (row.get("person") or {}).get("age_group")
        # a follow-up that borrowed a delayed answer's lines replies with that intent's lines
        intent = intents[row.get("borrowed") or row["intent"]]
        if "more" in row["reply"]:
            pair = (row["reply"]["text"], row["reply"]["more"][0]["text"])
            assert pair in intent.bubbles_for(group), row
        else:
            assert row["reply"]["text"] in intent.replies_for(group), row
        checked += 1
    assert checked > 2500


def test_bubbles_come_in_pairs_of_the_same_minute_or_the_next(corpus: dict[str, list[dict]]) -> None:
    intents = {intent.name: intent for intent in load_intents()}
    bubbled = single = same_minute = 0
    for row in corpus["train"]:
        more = row["reply"].get("more")
        if not intents[row["intent"]].bubbles:
            assert more is None, row  # only an intent with bubbles replies in two messages
            continue
        if more is None:
            single += 1
            continue
        assert len(more) == 1 and more[0]["text"], row
        gap = datetime.fromisoformat(more[0]["at"]) - datetime.fromisoformat(row["reply"]["at"])
        assert gap in (timedelta(0), timedelta(minutes=1)), row
        bubbled += 1
        same_minute += gap == timedelta(0)
    assert 0.3 < bubbled / (bubbled + single) < 0.5  # about 40% of the replies of such intents
    assert 0.55 < same_minute / bubbled < 0.85  # 70% in the same minute
    assert bubbled / len(corpus["train"]) < 0.1  # a single message stays the norm


def test_small_talk_shows_bubbles_as_two_consecutive_companion_turns(corpus: dict[str, list[dict]]) -> None:
    pairs = {pair for intent in load_intents() for lines in intent.bubbles.values() for pair in lines}
    shown = 0
    for row in corpus["train"]:
        turns = row["turns"]
        announces = row["scenario"] in ("companion_leaves", "companion_sleeps")
        for index, (first, second) in enumerate(itertools.pairwise(turns)):
            if first["role"] == second["role"] == "companion":
                if announces and index + 1 == len(turns) - 2:
                    continue  # the companion's announcement right after its small-talk answer
                assert (first["text"], second["text"]) in pairs, row
                gap = datetime.fromisoformat(second["at"]) - datetime.fromisoformat(first["at"])
                assert gap in (timedelta(0), timedelta(minutes=1)), row
                shown += 1
    assert shown > 20


def test_no_slot_is_left_unfilled(corpus: dict[str, list[dict]]) -> None:
    for rows in corpus.values():
        for row in rows:
            texts = [turn["text"] for turn in row["turns"]] + [row["reply"]["text"]]
            assert not any("{" in text or "}" in text for text in texts), row


def test_a_bad_data_line_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    good = {"intent": "x", "lang": "en", "timing": "instant", "person": ["hi"], "reply": {"adult": ["hey"]}}
    rows = [good, {**good, "intent": "y", "timing": "busy_for"}]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")

    with pytest.raises(
        CorpusDataError, match=r"broken.jsonl:2: person line 'hi' lacks the slot \{duration\}"
    ):
        load_intents([path])
    path.write_text(json.dumps({**good, "lang": "ko"}) + "\n")
    with pytest.raises(CorpusDataError, match=r"broken\.jsonl:1: a Korean intent needs 'senior' replies"):
        load_intents([path])


FOLLOW = {
    "intent": "f",
    "lang": "en",
    "timing": "follow_after",
    "minutes": [40, 85],
    "person": ["going to eat"],
    "answer": {"adult": ["enjoy!"]},
    "reply": {"adult": ["how was it?"]},
}
NO_ANSWER = {k: v for k, v in FOLLOW.items() if k != "answer"}
NO_MINUTES = {k: v for k, v in FOLLOW.items() if k != "minutes"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (NO_ANSWER, r"broken\.jsonl:2: a follow-up \('follow_after'\) needs 'answer'"),
        (
            {**NO_MINUTES, "timing": "follow_morning", "answer": None},
            r"broken\.jsonl:2: a follow-up \('follow_morning'\) needs",
        ),
        ({**FOLLOW, "timing": "no_follow_up"}, r"broken\.jsonl:2: 'no_follow_up' takes no 'minutes'"),
        (NO_MINUTES, r"broken\.jsonl:2: 'follow_after' needs 'minutes': \[low, high\]"),
        (
            {**FOLLOW, "minutes": [5, 85]},
            r"broken\.jsonl:2: 'minutes' must satisfy 10 <= low <= high <= 1440",
        ),
        ({**FOLLOW, "minutes": [90, 85]}, r"broken\.jsonl:2: 'minutes' must satisfy 10 <= low <= high"),
        ({**FOLLOW, "minutes": [60.5, 85]}, r"broken\.jsonl:2: 'follow_after' needs 'minutes'"),
        (
            {**FOLLOW, "timing": "follow_event", "minutes": [60, 150]},
            r"broken\.jsonl:2: person line 'going to eat' lacks the slot \{time\}",
        ),
        (
            {**FOLLOW, "lang": "ko", "reply": {"adult": ["a"], "senior": ["b"]}},
            r"broken\.jsonl:2: a Korean intent needs 'senior' answer lines",
        ),
        (
            {**FOLLOW, "answer": {"adult": ["enjoy!"], "teen": ["yo"]}},
            r"broken\.jsonl:2: unknown answer register",
        ),
        (
            {**FOLLOW, "answer": {"adult": ["at {time}"]}},
            r"broken\.jsonl:2: answer\.adult line .* the slot \{time\}",
        ),
        (
            {**NO_MINUTES, "timing": "bye"},
            r"broken\.jsonl:2: 'answer' belongs to follow-up timings only, not 'bye'",
        ),
    ],
)
def test_a_bad_follow_up_names_its_file_and_line(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "broken.jsonl"
    row = {key: value for key, value in row.items() if value is not None}
    path.write_text(json.dumps({**FOLLOW, "intent": "ok"}) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(CorpusDataError, match=message):
        load_intents([path])


BUBBLY = {
    "intent": "b",
    "lang": "en",
    "timing": "instant",
    "person": ["I got the job"],
    "reply": {"adult": ["yay"]},
}


@pytest.mark.parametrize(
    ("bubbles", "message"),
    [
        (
            {"adult": [["WAIT what", "congrats!!", "🎉"]]},
            r"broken\.jsonl:2: bubbles\.adult entry .* not a pair of exactly 2",
        ),
        ({"adult": [["WAIT what"]]}, r"broken\.jsonl:2: bubbles\.adult entry \['WAIT what'\] is not a pair"),
        (
            {"adult": ["WAIT what", "congrats!!"]},
            r"broken\.jsonl:2: bubbles\.adult entry 'WAIT what' is not a pair",
        ),
        (
            {"adult": [["WAIT what", " "]]},
            r"broken\.jsonl:2: 'bubbles\.adult' holds an empty or non-string line",
        ),
        (
            {"adult": [["WAIT what", ""]]},
            r"broken\.jsonl:2: 'bubbles\.adult' holds an empty or non-string line",
        ),
        ({"adult": [["WAIT [what]", "congrats"]]}, r"broken\.jsonl:2: bubbles\.adult line .* a bracket"),
        ({"adult": []}, r"broken\.jsonl:2: 'bubbles\.adult' must be a non-empty list of pairs"),
        (
            {"senior": [["Oh my", "Congratulations"]]},
            r"broken\.jsonl:2: 'bubbles' must be an object with at least",
        ),
        (
            {"adult": [["a", "b"]], "kid": [["a", "b"]]},
            r"broken\.jsonl:2: unknown bubbles register\(s\) \['kid'\]",
        ),
    ],
)
def test_a_bad_bubble_pair_names_its_file_and_line(tmp_path: Path, bubbles: dict, message: str) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(
        json.dumps(BUBBLY) + "\n" + json.dumps({**BUBBLY, "intent": "c", "bubbles": bubbles}) + "\n"
    )
    with pytest.raises(CorpusDataError, match=message):
        load_intents([path])


def test_bubbles_belong_to_instant_type_intents_and_korean_ones_need_senior(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    pairs = {"adult": [["a", "b"]]}
    path.write_text(json.dumps({**BUBBLY, "timing": "bye", "bubbles": pairs}) + "\n")
    with pytest.raises(
        CorpusDataError, match=r"broken\.jsonl:1: 'bubbles' belong to instant-type timings only"
    ):
        load_intents([path])
    korean = {**BUBBLY, "lang": "ko", "reply": {"adult": ["a"], "senior": ["b"]}, "bubbles": pairs}
    path.write_text(json.dumps(korean) + "\n")
    with pytest.raises(
        CorpusDataError, match=r"broken\.jsonl:1: a Korean intent needs 'senior' bubbles lines"
    ):
        load_intents([path])


def test_build_is_reproducible(tmp_path: Path) -> None:
    """Two builds in one process give the same bytes, even when other encodings came in between.

    Both are built here, on the one thread the generator tests use: a build made elsewhere in
    the run (on however many threads were set then) sums floats in another order.
    """
    from companion.generator import build_default_model
    from companion.generator.sentence_vectors import shared_vectors

    first = build_default_model(tmp_path / "first", preset="tiny", seed=0, evaluate_held_out=False)
    # Other texts through the process's shared cache, in other batches: a build must not see them.
    shared_vectors().encode(["밥 먹고 올게", "good night!", "뭐해?", "I'm going to eat now"])
    again = build_default_model(tmp_path / "again", preset="tiny", seed=0, evaluate_held_out=False)

    files = ("model.safetensors", "sentence_conditioning.safetensors", "tokenizer.json")
    for name in (*files, "data/train.jsonl", "data/val.jsonl"):
        digest = [hashlib.sha256((path / name).read_bytes()).hexdigest() for path in (first, again)]
        assert digest[0] == digest[1], name
