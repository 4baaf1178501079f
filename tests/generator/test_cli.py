"""The command line, through its public entry point: exit codes, outputs, clear errors."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from companion.generator import dialogue_from_json, parse_completion
from companion.generator.cli import main

CONVERSATION = {
    "time_zone": "Asia/Seoul",
    "companion": {"name": "Luda"},
    "turns": [
        {"role": "person", "at": "2026-03-02T23:58", "text": "hey luda"},
        {"role": "companion", "at": "2026-03-02T23:58", "text": "hi! I'm going to sleep now, talk later!"},
        {"role": "person", "at": "2026-03-02T23:59", "text": "ok good night"},
    ],
}


def run(argv: list[str], capsys: pytest.CaptureFixture[str], stdin: str = "") -> tuple[int, str, str]:
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(argv)
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return code, out, err


def test_reply_prints_a_time_and_text(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["reply", "--model", str(tiny_model_dir)], capsys, json.dumps(CONVERSATION))

    assert code == 0
    match = re.fullmatch(r"\[((?:\+\d+d )?\d\d:\d\d)\] (.+)\n", out)
    assert match is not None
    dialogue, _ = dialogue_from_json(CONVERSATION)
    parse_completion(f"{match[1]}] {match[2]}", previous=dialogue.last_at, time_zone="Asia/Seoul")


def test_reply_json_output_with_a_small_max_delay(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "reply",
        "--model",
        str(tiny_model_dir),
        "--json",
        "--max-delay-minutes",
        "30",
        "--temperature",
        "1",
    ]
    code, out, _ = run([*argv, "--seed", "4"], capsys, json.dumps(CONVERSATION))

    record = json.loads(out)
    assert code == 0
    assert 0 <= record["delay_minutes"] <= 30
    assert record["completion"].startswith(record["time"] + "] ")


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{not json", "stdin is not valid JSON"),
        ('{"turns": []}', "'turns' must be a non-empty list"),
        ('{"turns": [{"role": "person", "at": "yesterday", "text": "hi"}]}', "is not an ISO datetime"),
        (json.dumps(CONVERSATION | {"time_zone": "Mars/Base"}), "unknown time zone"),
    ],
)
def test_reply_rejects_bad_input(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], stdin: str, message: str
) -> None:
    code, out, err = run(["reply", "--model", str(tiny_model_dir)], capsys, stdin)

    assert code == 2
    assert out == ""
    assert err.startswith("python -m companion.generator reply: error: ")
    assert message in err


def test_missing_model_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["reply", "--model", str(tmp_path / "none")], capsys, json.dumps(CONVERSATION))

    assert code == 2
    assert f"no model at {tmp_path / 'none'}" in err


def test_eval_json_reports_the_timelychat_metrics(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_model_dir / "data" / "val.jsonl"

    code, out, _ = run(
        ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--limit", "6", "--json"], capsys
    )

    metrics = json.loads(out)
    assert code == 0
    assert (
        metrics["examples"],
        metrics["valid"],
        metrics["valid_format_rate"],
        metrics["parse_failures"],
    ) == (6, 6, 1.0, 0)
    for name in ("raw", "clamped"):
        assert set(metrics[name]) == {
            "precision",
            "recall",
            "f1",
            "fpr",
            "rmsle",
            "bucket_accuracy",
            "tp",
            "fp",
            "fn",
            "tn",
        }
        assert sum(metrics[name][k] for k in ("tp", "fp", "fn", "tn")) == 6


def test_eval_predictions_one_line_per_example_in_order(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from companion.generator import ReplyGenerator
    from companion.generator.build import read_jsonl

    data = tiny_model_dir / "data" / "val.jsonl"
    predictions = tmp_path / "predictions.jsonl"
    argv = ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--limit", "5", "--json"]

    code, out, _ = run([*argv, "--predictions", str(predictions)], capsys)

    assert code == 0
    records = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 5
    # The same replies, in the same order, as the model gives row by row (greedy decoding).
    generator = ReplyGenerator.load(tiny_model_dir)
    expected = []
    for obj in read_jsonl(data)[:5]:
        dialogue, _ = dialogue_from_json(obj)
        reply = generator.generate(dialogue)
        local = reply.at.astimezone(ZoneInfo(dialogue.time_zone))
        expected.append({"at": local.strftime("%Y-%m-%dT%H:%M"), "text": reply.text})
    assert records == expected
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d", r["at"]) for r in records)
    text = json.loads(out)["text"]
    assert text["replies"] == 5
    assert set(text) == {
        "replies",
        "language_match_rate",
        "distinct_rate",
        "garbled_rate",
        "garbled_reasons",
        "register_rate",
        "register_examples",
        "by_language",
    }
    assert text["distinct_rate"] == len({r["text"] for r in records}) / 5


def test_eval_predictions_record_failed_generations(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_model_dir / "data" / "val.jsonl"
    predictions = tmp_path / "predictions.jsonl"
    # One unconstrained token cannot be "TIME] TEXT": every row fails to parse.
    argv = ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--limit", "3", "--unconstrained"]

    code, out, _ = run([*argv, "--max-new-tokens", "1", "--predictions", str(predictions)], capsys)

    assert code == 0
    records = [json.loads(line) for line in predictions.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 3
    assert all(set(record) == {"error"} and record["error"] for record in records)
    assert "examples 3  valid-format rate 0.000  parse failures 3" in out
    assert "text     n=   0  language match -  distinct -  garbled -  register - of 0" in out


def test_eval_rejects_a_limit_below_one(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tiny_model_dir / "data" / "val.jsonl"
    argv = ["eval", "--model", str(tiny_model_dir), "--data", str(data), "--limit", "0"]

    code, out, err = run(argv, capsys)

    assert (code, out) == (2, "")
    assert err == "python -m companion.generator eval: error: --limit must be at least 1\n"


def test_eval_rejects_a_broken_data_file(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "broken.jsonl"
    data.write_text(json.dumps({"turns": []}) + "\n{oops\n")

    code, _, err = run(["eval", "--model", str(tiny_model_dir), "--data", str(data)], capsys)

    assert code == 2
    assert f"{data}:2: not valid JSON" in err


def test_corpus_and_train_commands(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["corpus", "--out", str(tmp_path / "c"), "--n-train", "5", "--n-val", "3"], capsys)

    assert code == 0
    assert out == f"train: {tmp_path / 'c' / 'train.jsonl'}\nval: {tmp_path / 'c' / 'val.jsonl'}\n"
    assert len((tmp_path / "c" / "train.jsonl").read_text().splitlines()) == 5
    assert len((tmp_path / "c" / "val.jsonl").read_text().splitlines()) == 3

    argv = ["train", "--data", str(tmp_path / "c" / "train.jsonl"), "--base", str(tiny_model_dir)]
    code, out, _ = run([*argv, "--out", str(tmp_path / "a"), "--steps", "2", "--batch-size", "2"], capsys)

    assert code == 0
    assert out == f"{tmp_path / 'a'}\n"
    assert json.loads((tmp_path / "a" / "training.json").read_text())["data"]["rows"] == 5


def test_module_entry_point_exits_non_zero_on_bad_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "companion.generator", "reply", "--model", "var/models/none"],
        input="[]",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert result.stderr == "python -m companion.generator reply: error: a dialogue must be a JSON object\n"


def test_export_gguf_writes_the_llama_with_its_tokenizer(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import gguf
    from tokenizers import Tokenizer

    # when
    code, out, _ = run(
        ["export-gguf", "--model", str(tiny_model_dir), "--out", str(tmp_path / "m.gguf")], capsys
    )
    # then: a llama with the tiny shape, tied output, and our vocabulary in id order
    assert (code, out.strip()) == (0, str(tmp_path / "m.gguf"))
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    config = json.loads((tiny_model_dir / "config.json").read_text(encoding="utf-8"))

    def field(name: str) -> object:
        return reader.fields[name].contents()

    assert (field("general.architecture"), field("llama.block_count"), field("llama.embedding_length")) == (
        "llama",
        config["num_hidden_layers"],
        config["hidden_size"],
    )
    names = {tensor.name for tensor in reader.tensors}
    assert len(names) == 2 + 9 * config["num_hidden_layers"] and "output.weight" not in names
    vocabulary = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")).get_vocab(with_added_tokens=True)
    assert field("tokenizer.ggml.tokens") == sorted(vocabulary, key=vocabulary.__getitem__)
    assert (field("tokenizer.ggml.model"), field("tokenizer.ggml.eos_token_id")) == (
        "gpt2",
        config["eos_token_id"],
    )


def test_export_gguf_of_a_missing_model_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["export-gguf", "--model", str(tmp_path), "--out", str(tmp_path / "m.gguf")], capsys)
    assert (code, err.strip()) == (
        2,
        f"python -m companion.generator export-gguf: error: no model at {tmp_path} "
        "(expected a directory with config.json)",
    )
