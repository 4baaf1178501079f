"""The corpus: hand-written data files, composed reproducibly, with a held-out split really held out."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from companion.generator.corpus_data import CorpusDataError, load_intents

CONFIG = CorpusConfig(n_train=3000, n_val=600, seed=7)


@pytest.fixture(scope="module")
def corpus() -> dict[Split, list[dict[str, Any]]]:
    return build_corpus(CONFIG)


def delay_minutes(row: dict) -> float:
    dialogue, reply = dialogue_from_json(row)
    assert reply is not None
    return (reply[0] - dialogue.last_at) / timedelta(minutes=1)


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


def test_held_out_split_uses_sentences_training_never_saw(corpus: dict[str, list[dict]]) -> None:
    slotted = ("busy_for", "busy_until", "wake_at")

    def person_texts(rows: list[dict]) -> set[str]:
        # The decisive turn of a slotted intent is its line with the slot filled in (its template
        # is what the split hashes), so only the other turns are compared as they are.
        return {
            turn["text"]
            for row in rows
            for turn in (row["turns"][:-1] if row["scenario"] in slotted else row["turns"])
            if turn["role"] == "person"
        }

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
    for rows in corpus.values():
        pairs = Counter((row["scenario"], row["time_zone"] == "Asia/Seoul") for row in rows)
        assert {scenario for scenario, _ in pairs} == set(SCENARIO_WEIGHTS)
        crosses_midnight = [r for r in rows if r["reply"]["at"][:10] != r["turns"][-1]["at"][:10]]
        assert {r["scenario"] for r in crosses_midnight} >= {"good_night", "companion_sleeps", "wake_at"}
    instant = sum(row["scenario"] in ("instant", "complaint", "back") for row in corpus["train"])
    assert 0.40 < instant / len(corpus["train"]) < 0.50


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
        assert row["reply"]["text"] in intents[row["intent"]].replies_for(group), row
        checked += 1
    assert checked > 2500


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
