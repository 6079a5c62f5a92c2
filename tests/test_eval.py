import dataclasses
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.fake_backends import CountingBackend, LimitedBackend, RejectingBackend, ScriptedBackend
from vhs.cache import ResponseCache
from vhs.cli import main
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.errors import VhsError
from vhs.eval.retry import RetryPolicy, call_with_retries
from vhs.eval.rows import STATUSES
from vhs.eval.runner import RunOptions, Unavailable, at_each_position, evaluate, evaluate_models, place_needle, run_backend
from vhs.metrics import needle_depth
from vhs.models.base import Backend
from vhs.models.registry import load_backend
from vhs.protocol import AuthError, Reply, Request, TransientError
from vhs.synth.scenes import image_file_name

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def questions(small_catalog: Catalog) -> list[dict]:
    return list(qs.build_question_set(small_catalog, "single", (1, 5), 10, 0, progress=False)) + list(
        qs.build_question_set(small_catalog, "multi", (5,), 8, 0, progress=False)
    )


@pytest.fixture
def cache(tmp_path: Path) -> ResponseCache:
    return ResponseCache(tmp_path / "cache.sqlite")


def options(small_synth: Path, **kw) -> RunOptions:
    return RunOptions(data=small_synth, retry=FAST_RETRY, **kw)


def test_second_run_is_served_from_the_cache(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    first = CountingBackend()
    table = run_backend(first, questions, cache, options(small_synth, concurrency=4))
    assert len(first.calls) == len(questions) == len(table)
    assert set(table["status"]) == {"ok"} and not table["cached"].any()
    again = CountingBackend()
    rerun = run_backend(again, questions, cache, options(small_synth))
    assert again.calls == [] and rerun["cached"].all()
    assert rerun["raw"].tolist() == table["raw"].tolist()
    other_text = CountingBackend(text="No")  # different generation parameters: a different key
    run_backend(other_text, questions[:3], cache, options(small_synth))
    assert len(other_text.calls) == 3


def test_results_table_columns_and_types(questions: list[dict], cache: ResponseCache, small_synth: Path, tmp_path: Path) -> None:
    table = run_backend(CountingBackend(), questions, cache, options(small_synth))
    yes = table[table["answer"] == "yes"]
    assert yes["correct"].all() and not table[table["answer"] == "no"]["correct"].any()
    assert table["parsed"].eq("yes").all() and table["images_sent"].tolist() == [q["size"] for q in questions]
    assert table["input_tokens"].dtype == "Int64" and set(table["status"]) <= set(STATUSES)
    path = tmp_path / "r.parquet"
    table.to_parquet(path)
    assert pd.read_parquet(path)["qid"].tolist() == [q["qid"] for q in questions]


def test_sigkill_halfway_then_resume_makes_exactly_the_missing_calls(
    small_catalog: Catalog, small_synth: Path, tmp_path: Path
) -> None:
    qfile = tmp_path / "q.jsonl"
    total = qs.write_jsonl(qs.build_question_set(small_catalog, "single", (3,), 60, 0, progress=False), qfile)
    log, cache_path = tmp_path / "calls.log", tmp_path / "cache.sqlite"
    model = f"tests.fake_backends.CountingBackend?delay=0.05&log={log}"
    argv = [
        sys.executable,
        "-m",
        "vhs.cli",
        "eval",
        "--model",
        model,
        "--questions",
        str(qfile),
        "--out",
        str(tmp_path / "r.parquet"),
        "--cache",
        str(cache_path),
        "--data",
        str(small_synth),
        "--concurrency",
        "2",
    ]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while (not log.exists() or len(log.read_text().splitlines()) < total // 2) and time.time() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "r.parquet").exists()
    with sqlite3.connect(cache_path) as db:
        cached = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert 0 < cached < total
    calls_before = len(log.read_text().splitlines())
    subprocess.run(argv, cwd=REPO, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert len(log.read_text().splitlines()) - calls_before == total - cached
    table = pd.read_parquet(tmp_path / "r.parquet")
    assert len(table) == total and set(table["status"]) == {"ok"} and table["cached"].sum() == cached


def test_429_then_success_is_retried(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    backend = ScriptedBackend(
        [TransientError("429 Too Many Requests", retry_after=0.001), TransientError("500 Internal Server Error")]
    )
    table = run_backend(backend, questions[:1], cache, options(small_synth))
    assert backend.calls == 3 and table["status"].tolist() == ["ok"] and table["raw"].tolist() == ["No"]


def test_retries_are_bounded_and_end_in_error(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    backend = ScriptedBackend([TransientError("503 Service Unavailable")] * 10)
    table = run_backend(backend, questions[:1], cache, options(small_synth))
    assert backend.calls == FAST_RETRY.max_attempts
    assert table["status"].tolist() == ["error"] and table["raw"].tolist() == ["503 Service Unavailable (after 3 attempts)"]
    assert not table["correct"].any() and table["parsed"].isna().all()
    assert cache.count() == 0  # failures are never cached


def test_retry_after_is_honoured_and_backoff_grows_with_jitter() -> None:
    waits: list[float] = []
    script = [TransientError("429", retry_after=2.5), TransientError("500"), TransientError("500"), TransientError("500")]

    def flaky() -> str:
        if script:
            raise script.pop(0)
        return "done"

    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=3.0)
    assert call_with_retries(flaky, policy, sleep=waits.append, rng=random.Random(0)) == "done"
    assert 2.5 <= waits[0] <= 3.0  # what the provider asked, plus up to 20%, within the cap
    assert (
        1.0 <= waits[1] <= 2.0 and 1.5 <= waits[2] <= 3.0 and 1.5 <= waits[3] <= 3.0
    )  # 2s and 4s capped at 3s, jittered 50-100%


def test_401_stops_the_run_with_one_line(
    questions: list[dict], small_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    qfile = tmp_path / "q.jsonl"
    qs.write_jsonl(iter(questions), qfile)
    code = main(
        [
            "eval",
            "--model",
            "tests.fake_backends.UnauthorizedBackend",
            "--questions",
            str(qfile),
            "--out",
            str(tmp_path / "r.parquet"),
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--data",
            str(small_synth),
        ]
    )
    err = [line for line in capsys.readouterr().err.splitlines() if "%|" not in line and line.strip()]
    assert code == 2 and err == ["vhs: error: unauthorized: authentication failed (401 invalid api key); check the API key"]
    assert not (tmp_path / "r.parquet").exists()


def test_auth_error_is_never_retried(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    backend = ScriptedBackend([AuthError("403 Forbidden")])
    with pytest.raises(VhsError, match="authentication failed"):
        run_backend(backend, questions[:1], cache, options(small_synth))
    assert backend.calls == 1


def test_missing_key_marks_the_model_not_run(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    table = evaluate("tests.fake_backends.NoKeyBackend", questions, cache, options(small_synth))
    assert len(table) == len(questions) and set(table["status"]) == {"not_run"} and set(table["raw"]) == {"no API key"}
    assert table["model"].unique().tolist() == ["tests.fake_backends.NoKeyBackend"]


def test_over_limit_haystacks_are_not_sent(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    backend = LimitedBackend()
    table = run_backend(backend, questions, cache, options(small_synth))
    by_size = table.groupby("size")["status"].unique().to_dict()
    assert by_size[1].tolist() == ["ok"] and by_size[5].tolist() == ["not_answerable:payload"]
    assert len(backend.calls) == sum(q["size"] == 1 for q in questions)
    backend.limits = type(backend.limits)(max_images=None, context_tokens=250)
    table = run_backend(backend, questions, cache, options(small_synth))
    assert set(table[table["size"] == 5]["status"]) == {"not_answerable:context"}


def test_a_413_reply_maps_to_not_answerable(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    table = run_backend(RejectingBackend(), questions, cache, options(small_synth))
    assert set(table[table["size"] == 5]["status"]) == {"not_answerable:payload"}
    assert set(table[table["size"] == 1]["status"]) == {"ok"}


def test_oracle_scores_100_percent_and_always_yes_50(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    oracle = evaluate(f"oracle?data={small_synth}", questions, cache, options(small_synth))
    assert oracle["correct"].all() and len(oracle) == len(questions)
    always = evaluate("always-yes", questions, cache, options(small_synth))
    assert always["correct"].mean() == 0.5


def test_random_is_seeded_and_order_independent(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    a = evaluate("random?seed=1", questions, ResponseCache(cache.path.with_name("a.sqlite")), options(small_synth, concurrency=8))
    b = evaluate(
        "random?seed=1", questions[::-1], ResponseCache(cache.path.with_name("b.sqlite")), options(small_synth, concurrency=1)
    )
    assert a["raw"].tolist() == b["raw"].tolist()[::-1]
    assert 0.2 < (a["parsed"] == "yes").mean() < 0.8


def test_api_keys_never_reach_the_cache(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    secret = "sk-test-DO-NOT-STORE-1234"
    run_backend(CountingBackend(api_key=secret), questions[:3], cache, options(small_synth))
    cache.close()
    stored = b"".join(p.read_bytes() for p in cache.path.parent.glob("cache.sqlite*"))
    assert secret.encode() not in stored


def test_needle_position_control(questions: list[dict], small_synth: Path, cache: ResponseCache) -> None:
    q = next(q for q in questions if q["size"] == 5)
    for position, index in (("first", 0), ("middle", 2), ("last", 4), ("3", 3)):
        moved = place_needle(q, position)
        assert moved["image_ids"][index] == q["needle_ids"][0] and moved["needle_positions"] == [index]
        assert sorted(moved["image_ids"]) == sorted(q["image_ids"])
    with pytest.raises(VhsError, match="outside a haystack of 5 images"):
        place_needle(q, "5")
    with pytest.raises(VhsError, match="single-needle questions only"):
        place_needle(next(q for q in questions if q["mode"] == "multi"), "first")
    table = run_backend(CountingBackend(), [q], cache, options(small_synth, position="last"))
    assert table["position"].tolist() == [4]


def test_unknown_model_is_one_clear_error() -> None:
    with pytest.raises(
        VhsError,
        match="unknown model 'gpt5'; known: always-yes, anthropic, caption, clip-retrieve, gemini, hf, mirage,"
        " mirage-official, openai, openrouter, oracle, random, synth-caption, synth-llava",
    ):
        load_backend("gpt5")


def test_evaluate_models_labels_each_model_and_marks_a_missing_spec_not_run(small_catalog: Catalog, tmp_path: Path) -> None:
    questions = list(qs.build_question_set(small_catalog, "single", (2,), 2, 0, progress=False))
    cache = ResponseCache(tmp_path / "cache.sqlite")
    table = evaluate_models({"yes": "always-yes", "truth": "oracle", "MIRAGE": Unavailable("weights absent")}, questions, cache)
    assert list(table["model"]) == ["yes", "yes", "truth", "truth", "MIRAGE", "MIRAGE"]
    assert list(table["status"]) == ["ok"] * 4 + ["not_run"] * 2
    assert list(table["raw"][4:]) == ["weights absent"] * 2


def test_each_position_asks_every_index_of_small_haystacks_and_each_tenth_of_large_ones(small_catalog: Catalog) -> None:
    small = list(qs.build_question_set(small_catalog, "single", (3,), 2, 0, progress=False))
    large = list(qs.build_question_set(small_catalog, "single", (40,), 2, 0, progress=False))
    moved = at_each_position(small + large)
    assert [q["needle_positions"][0] for q in moved] == [0, 1, 2] * 2 + [2, 6, 10, 14, 18, 22, 26, 30, 34, 38] * 2
    assert all(q["image_ids"][q["needle_positions"][0]] == q["needle_ids"][0] for q in moved)
    assert [q["qid"] for q in moved[:3]] == [small[0]["qid"]] * 3
    depth = needle_depth(
        pd.DataFrame({"size": [q["size"] for q in moved], "position": [q["needle_positions"][0] for q in moved]})
    )
    assert depth[:3].tolist() == [0.0, 0.5, 1.0] and depth[6:16].round(2).tolist() == [
        0.05,
        0.15,
        0.25,
        0.35,
        0.45,
        0.55,
        0.65,
        0.75,
        0.85,
        0.95,
    ]


class RecordingBackend(Backend):
    """Keeps every request it is sent."""

    name = "recording"

    def __init__(self) -> None:
        super().__init__("recording")
        self.requests: list[Request] = []

    def generate(self, request: Request) -> Reply:
        self.requests.append(request)
        return Reply(text="Yes")


def test_a_backend_is_sent_the_question_never_its_answer(questions: list[dict], cache: ResponseCache, small_synth: Path) -> None:
    assert not {"answer", "needle_ids", "needle_positions"} & {f.name for f in dataclasses.fields(Request)}
    backend = RecordingBackend()
    run_backend(backend, questions, cache, options(small_synth))
    by_qid = {q["qid"]: q for q in questions}
    assert sorted(r.qid for r in backend.requests) == sorted(by_qid)
    for request in backend.requests:
        record = by_qid[request.qid]
        assert (request.question, request.anchor, request.target) == (record["question"], record["anchor"], record["target"])
        assert request.kind == (record["quantifier"] or "single")
        assert [Path(image.path).name for image in request.images] == [image_file_name(i - 1) for i in record["image_ids"]]
        assert record["answer"] not in vars(request).values() and record["needle_ids"] not in vars(request).values()
