import hashlib
import json
from pathlib import Path

import pytest

from vhs.cli import main


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_questions_twice_gives_the_same_sha256(small_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["questions", "--data", str(small_synth), "--mode", "multi", "--sizes", "5,10", "--per-size", "8", "--seed", "3"]
    assert run(capsys, *args, "--out", str(tmp_path / "a.jsonl"))[0] == 0
    code, out, _ = run(capsys, *args, "--out", str(tmp_path / "b.jsonl"))
    digest = hashlib.sha256((tmp_path / "a.jsonl").read_bytes()).hexdigest()
    assert code == 0 and f"wrote 16 questions to {tmp_path / 'b.jsonl'} (sha256 {digest})" in out
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    first = json.loads((tmp_path / "a.jsonl").read_text().splitlines()[0])
    assert list(first) == sorted(first)


def test_questions_export_and_import_official(small_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["questions", "--data", str(small_synth), "--sizes", "3", "--per-size", "4"]
    assert run(capsys, *base, "--out", str(tmp_path / "q.jsonl"), "--export-official", str(tmp_path / "official"))[0] == 0
    released = tmp_path / "official/single_needle/VHs_large/visual_haystack_3.json"
    assert len(json.loads(released.read_text())) == 4
    code, out, _ = run(
        capsys,
        "questions",
        "--data",
        str(small_synth),
        "--import-official",
        str(released),
        "--out",
        str(tmp_path / "imported.jsonl"),
    )
    assert code == 0 and "wrote 4 questions" in out


def test_synth_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _out, _ = run(capsys, "synth", "--out", str(tmp_path), "--images", "12", "--seed", "1", "--workers", "1")
    assert code == 0 and len(list((tmp_path / "images").glob("*.png"))) == 12


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["questions", "--per-size", "3", "--data", "{data}", "--out", "x.jsonl"], "--per-size must be a positive even number"),
        (["questions", "--sizes", "1,x"], "argument --sizes: expected comma-separated integers"),
        (
            ["questions", "--data", "{data}", "--sizes", "5000", "--per-size", "2", "--out", "x.jsonl"],
            "haystack size 5000 needs 4999 distractors",
        ),
        (["questions", "--data", "{missing}", "--out", "x.jsonl"], "annotation file not found"),
        (["questions", "--data", "{data}", "--exclude", "unicorn", "--out", "x.jsonl"], "unknown category 'unicorn'"),
        (["questions", "--data", "{data}"], "nothing to write"),
        (["data", "coco", "--root", "{missing}", "--splits", "test2015"], "unknown COCO split 'test2015'"),
        (["synth", "--out", "{missing}", "--images", "0"], "--images must be at least 1"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    argv: list[str],
    message: str,
    small_synth: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    filled = [a.format(data=small_synth, missing=tmp_path / "missing") for a in argv]
    code, _, err = run(capsys, *filled)
    lines = [line for line in err.splitlines() if line.strip() and "%|" not in line]
    assert code == 2
    assert len(lines) == 1 and lines[0].startswith("vhs: error: ") and message in lines[0]
    assert "Traceback" not in err
