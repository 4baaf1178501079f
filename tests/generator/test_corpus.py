"""The synthetic corpus and the build: reproducible, varied, and a held-out split that is really held out."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import timedelta
from pathlib import Path

from companion.generator import dialogue_from_json
from companion.generator.corpus import CorpusConfig, build_corpus

CONFIG = CorpusConfig(n_train=1500, n_val=300, seed=7)


def delay_minutes(row: dict) -> float:
    dialogue, reply = dialogue_from_json(row)
    assert reply is not None
    return (reply[0] - dialogue.last_at) / timedelta(minutes=1)


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    assert build_corpus(CONFIG) == build_corpus(CONFIG)
    assert (
        build_corpus(CONFIG)["train"] != build_corpus(CorpusConfig(n_train=1500, n_val=300, seed=8))["train"]
    )


def _written_sentences(rows: list[dict]) -> set[str]:
    """What the person writes, and the companion's announcements of where it is going."""
    written = {turn["text"] for row in rows for turn in row["turns"] if turn["role"] == "person"}
    return written | {row["turns"][-2]["text"] for row in rows if row["scenario"].startswith("busy_")}


def test_held_out_split_uses_sentences_training_never_saw() -> None:
    corpus = build_corpus(CONFIG)
    train, val = _written_sentences(corpus["train"]), _written_sentences(corpus["val"])

    assert len(val) > 250
    assert val & train == set()


def test_held_out_sentences_are_new_combinations_of_known_words() -> None:
    corpus = build_corpus(CONFIG)

    def words(rows: list[dict]) -> set[str]:
        # English rows, letters only: clock times ("6:45") are drawn per dialogue, not vocabulary,
        # and Korean glues particles to its words ("노래에"), so words are not its unit.
        english = [row for row in rows if row["time_zone"] != "Asia/Seoul"]
        return {
            word for text in _written_sentences(english) for word in re.findall(r"[^\W\d_]+", text.lower())
        }

    assert words(corpus["val"]) - words(corpus["train"]) == set()


def test_every_scenario_language_and_midnight_case_is_covered() -> None:
    corpus = build_corpus(CONFIG)
    for rows in corpus.values():
        scenarios = Counter(row["scenario"] for row in rows)
        assert set(scenarios) == {
            "chat", "complaint", "busy_eat", "busy_shower", "busy_exercise", "busy_class", "busy_work",
            "busy_sleep", "good_night", "bye", "abuse", "wake", "person_busy", "person_away_eat",
            "person_away_shower", "person_away_exercise", "person_away_class", "person_away_work",
        }  # fmt: skip
        assert {row["time_zone"] == "Asia/Seoul" for row in rows} == {True, False}  # Korean and English
        crosses_midnight = [r for r in rows if r["reply"]["at"][:10] != r["turns"][-1]["at"][:10]]
        assert {r["scenario"] for r in crosses_midnight} >= {"good_night", "wake", "busy_sleep"}


def test_reply_times_follow_the_scenario() -> None:
    ranges = {
        "chat": (0, 0),
        "complaint": (0, 0),
        "busy_shower": (12, 25),
        "busy_eat": (40, 85),
        "busy_exercise": (50, 100),
        "busy_class": (60, 110),
        "busy_work": (150, 320),
        "person_away_shower": (12, 25),
        "person_away_eat": (40, 85),
        "person_away_exercise": (50, 100),
        "person_away_class": (60, 110),
        "person_away_work": (150, 320),
        "bye": (150, 300),
        "abuse": (150, 330),
    }
    for row in build_corpus(CONFIG)["train"]:
        delay = delay_minutes(row)
        if row["scenario"] in ranges:
            low, high = ranges[row["scenario"]]
            assert low <= delay <= high, row
        elif row["scenario"] in {"good_night", "busy_sleep"}:
            assert row["reply"]["at"][11:] >= "07:20" and row["reply"]["at"][11:] < "09:30"
        elif row["scenario"] == "wake":
            assert row["reply"]["at"][14:] in {"00", "15", "30", "45"}
            assert 0 < delay <= 24 * 60


def test_build_is_reproducible(tiny_model_dir: Path, tmp_path: Path) -> None:
    from companion.generator import build_default_model

    again = build_default_model(tmp_path / "again", preset="tiny", seed=0, evaluate_held_out=False)

    for name in ("model.safetensors", "tokenizer.json", "data/train.jsonl", "data/val.jsonl"):
        digest = [hashlib.sha256((path / name).read_bytes()).hexdigest() for path in (tiny_model_dir, again)]
        assert digest[0] == digest[1], name
