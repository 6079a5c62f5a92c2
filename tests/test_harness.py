"""The harness never returns a wrong answer silently, never pays twice, and stops when asked.

Each test here failed on the harness before these guarantees were built: cache identity, spec
checking, Ctrl-C and SIGTERM, bad replies and images, validation before paying, keys, and several
processes on one cache.
"""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROVIDER_ENV
from tests.fake_api_server import FakeAPIServer, Scripted, fake_api
from tests.fake_backends import CountingBackend
from vhs.cache import ResponseCache, cache_key
from vhs.cli import main
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.errors import VhsError
from vhs.eval.retry import RetryPolicy, call_with_retries
from vhs.eval.runner import RunOptions, evaluate
from vhs.models.api_common import JpegEncoder, retry_after_seconds
from vhs.models.base import Backend
from vhs.models.registry import load_backend, public_spec, redact
from vhs.protocol import ImageRef, Reply, TransientError

REPO = Path(__file__).resolve().parents[1]
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.002)
SECRET = "sk-test-never-anywhere-7781"


@pytest.fixture(scope="module")
def questions(small_catalog: Catalog) -> list[dict]:
    return list(qs.build_question_set(small_catalog, "single", (2,), 8, 0, progress=False))


@pytest.fixture(scope="module")
def question_file(questions: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("questions") / "q.jsonl"
    qs.write_jsonl(iter(questions), path)
    return path


def openai_spec(server: FakeAPIServer, options: str = "") -> str:
    return f"openai:gpt-4o@{server.url}/v1" + (f"?{options}" if options else "")


def eval_argv(model: str, question_file: Path, out: Path, cache: Path, data: Path, *extra: str) -> list[str]:
    return [
        "eval",
        "--model",
        model,
        "--questions",
        str(question_file),
        "--out",
        str(out),
        "--cache",
        str(cache),
        "--data",
        str(data),
        *extra,
    ]


def error_lines(capsys: pytest.CaptureFixture) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line]


# Cache identity -------------------------------------------------------------------------------------


def test_output_caps_are_in_the_key_and_a_larger_cap_asks_again(questions: list[dict], small_synth: Path, env: Path) -> None:
    cache = ResponseCache(env / "c.sqlite")
    with fake_api("Yes") as server:
        first = evaluate(openai_spec(server, "max_tokens=16"), questions[:2], cache, RunOptions(data=small_synth, retry=FAST))
        again = evaluate(openai_spec(server, "max_tokens=4000"), questions[:2], cache, RunOptions(data=small_synth, retry=FAST))
    assert not first["cached"].any() and not again["cached"].any()
    assert [c.body["max_tokens"] for c in server.captured] == [16, 16, 4000, 4000]
    assert "max_tokens" in load_backend(openai_spec(server, "max_tokens=5")).identity()["params"]


def test_secrets_are_left_out_by_name_never_by_substring() -> None:
    backend = CountingBackend(api_key=SECRET, text="Yes")
    backend.params["max_new_tokens"] = 8
    assert backend.identity()["params"] == {"text": "Yes", "max_new_tokens": 8}


def test_an_endpoint_from_the_environment_is_in_the_key(
    questions: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ResponseCache(env / "c.sqlite")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with fake_api("Yes") as local, fake_api("No") as other:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{local.url}/v1")
        yes = evaluate("openai:gpt-4o", questions[:2], cache, RunOptions(data=small_synth, retry=FAST))
        monkeypatch.setenv("OPENAI_BASE_URL", f"{other.url}/v1")
        no = evaluate("openai:gpt-4o", questions[:2], cache, RunOptions(data=small_synth, retry=FAST))
    assert len(local.captured) == 2 and len(other.captured) == 2
    assert yes["raw"].tolist() == ["Yes", "Yes"] and no["raw"].tolist() == ["No", "No"]


def test_parameters_are_canonical_json_and_anything_else_is_refused() -> None:
    assert Backend("m", path=Path("a/b"), sizes=(1, 2), nested={"b": 1, "a": 2.5}).identity()["params"] == {
        "path": "a/b",
        "sizes": [1, 2],
        "nested": {"a": 2.5, "b": 1},
    }
    with pytest.raises(TypeError, match="value of type object"):
        Backend("m", thing=object())
    with pytest.raises(TypeError, match="finite"):
        Backend("m", temperature=float("nan"))
    with pytest.raises(TypeError):
        cache_key({"backend": "b", "model": "m", "params": {"s": {1}}}, "p", [])


def test_a_rewritten_image_with_the_same_size_and_mtime_is_hashed_again(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    image = tmp_path / "img.png"
    image.write_bytes(b"A" * 100)
    first, _ = cache.image_hashes([image])[0]
    stat = image.stat()
    image.write_bytes(b"B" * 100)
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert image.stat().st_size == stat.st_size and image.stat().st_mtime_ns == stat.st_mtime_ns
    second, _ = cache.image_hashes([image])[0]
    assert first != second and second == cache.image_hashes([image])[0][0]


def test_a_remembered_hash_is_reused_once_the_file_is_old_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    image = tmp_path / "img.png"
    image.write_bytes(b"A" * 100)
    digest, _ = cache.image_hashes([image])[0]
    time.sleep(0.1)
    cache.image_hashes([image])[0]  # hashed again: it had changed within 50 ms of the first hash
    cache._execute("UPDATE file_hashes SET sha256 = 'remembered'")
    assert cache.image_hashes([image])[0][0] == "remembered"  # hashed long enough after its change: not read again
    for window in ("RACY_SECONDS", "COARSE_RACY_SECONDS"):
        monkeypatch.setattr(f"vhs.cache.{window}", 3600.0)
    assert cache.image_hashes([image])[0][0] == digest  # changed within the racy window: read again


def test_an_empty_reply_is_recorded_with_its_stop_reason_and_asked_again(
    questions: list[dict], small_synth: Path, env: Path
) -> None:
    empty = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": "length"}],
    }
    cache = ResponseCache(env / "c.sqlite")
    with fake_api("No") as server:
        server.script.append(Scripted(body=json.dumps(empty)))
        first = evaluate(openai_spec(server), questions[:1], cache, RunOptions(data=small_synth, retry=FAST))
        again = evaluate(openai_spec(server), questions[:1], cache, RunOptions(data=small_synth, retry=FAST))
    assert (
        first["status"].tolist() == ["truncated"]
        and first["stop_reason"].tolist() == ["length"]
        and first["raw"].tolist() == [""]
    )
    assert len(server.captured) == 2 and again["raw"].tolist() == ["No"] and not again["cached"].any()
    assert again["stop_reason"].tolist() == ["stop"]


def test_a_refusal_is_an_empty_reply_that_says_so(questions: list[dict], small_synth: Path, env: Path) -> None:
    refused = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": None, "refusal": "I can't help"}, "finish_reason": "stop"}
        ],
    }
    with fake_api("No") as server:
        server.script.append(Scripted(body=json.dumps(refused)))
        table = evaluate(
            openai_spec(server), questions[:1], ResponseCache(env / "c.sqlite"), RunOptions(data=small_synth, retry=FAST)
        )
    assert table["stop_reason"].tolist() == ["refusal"] and table["status"].tolist() == ["unparsed"]


# Spec strings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "openai:gpt-4o@http://127.0.0.1:9/v1?max_token=5",
            "openai: unknown option max_token; accepted: api_key, base_url, detail, max_tokens, order, reasoning,"
            " reasoning_effort, temperature, timeout",
        ),
        ("oracle?seed=1", "oracle: unknown option seed; accepted: data"),
        ("openai:", "empty model id in 'openai:'"),
        ("openai:gpt-4o@notaurl", "'@notaurl' is not a base URL"),
        ("vhs.errors.VhsError", "'vhs.errors.VhsError' is not a Backend subclass"),
        ("random?seed=1&seed=2", "an option is given twice"),
    ],
)
def test_a_bad_spec_is_one_clear_error(spec: str, message: str) -> None:
    with pytest.raises(VhsError) as raised:
        load_backend(spec)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_bad_spec_stops_vhs_eval_before_any_call(
    question_file: Path, small_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(eval_argv("random?sed=1", question_file, tmp_path / "r.parquet", tmp_path / "c.sqlite", small_synth))
    assert code == 2 and error_lines(capsys) == ["vhs: error: random: unknown option sed; accepted: seed"]


# Stop means stop ------------------------------------------------------------------------------------------


def _start_paid_run(server: FakeAPIServer, question_file: Path, small_synth: Path, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV} | {
        "VHS_DATA": str(tmp_path / "data"),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [
        sys.executable,
        "-m",
        "vhs.cli",
        *eval_argv(
            openai_spec(server), question_file, tmp_path / "r.parquet", tmp_path / "c.sqlite", small_synth, "--concurrency", "2"
        ),
    ]
    # as at a terminal: a shell without job control starts background jobs with SIGINT ignored, which Python keeps
    return subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_requests(server: FakeAPIServer, count: int) -> None:
    deadline = time.time() + 60
    while len(server.captured) < count and time.time() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_one_interrupt_sends_nothing_queued_and_exits_130(
    stop: signal.Signals, small_catalog: Catalog, small_synth: Path, tmp_path: Path
) -> None:
    qfile = tmp_path / "q.jsonl"
    total = qs.write_jsonl(qs.build_question_set(small_catalog, "single", (2,), 40, 0, progress=False), qfile)
    with fake_api("Yes") as server:
        server.delay = 0.3
        process = _start_paid_run(server, qfile, small_synth, tmp_path)
        _wait_for_requests(server, 4)
        process.send_signal(stop)
        sent_at_signal = len(server.captured)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert len(server.captured) - sent_at_signal <= 2  # at most the calls in flight (--concurrency 2)
    with sqlite3.connect(tmp_path / "c.sqlite") as db:
        cached = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert cached == len(server.captured)  # every call that went out was answered into the cache
    assert (
        err.strip().splitlines()[-1]
        == f"vhs: openai:gpt-4o: interrupted: {cached} of {total} answers are cached; the same command resumes from them"
    )
    assert "Traceback" not in err and not (tmp_path / "r.parquet").exists()


def test_a_second_interrupt_exits_at_once_without_a_traceback(question_file: Path, small_synth: Path, tmp_path: Path) -> None:
    with fake_api("Yes") as server:
        server.delay = 20.0
        process = _start_paid_run(server, question_file, small_synth, tmp_path)
        _wait_for_requests(server, 2)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        start = time.time()
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
        waited = time.time() - start
    assert process.returncode == 130 and waited < 10
    assert "Traceback" not in err and "left 2 calls in flight" in err.strip().splitlines()[-1]


# One bad reply or image never aborts the run ------------------------------------------------------------------


def test_malformed_replies_are_error_rows_and_the_run_goes_on(questions: list[dict], small_synth: Path, env: Path) -> None:
    no_choices = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "gpt-4o", "choices": []})
    cache = ResponseCache(env / "c.sqlite")
    with fake_api("Yes") as server:
        server.script.extend(
            [Scripted(body="{not json"), Scripted(body=no_choices), Scripted(429, headers={"Retry-After": "soon"})]
        )
        table = evaluate(openai_spec(server), questions[:4], cache, RunOptions(data=small_synth, retry=FAST, concurrency=1))
    assert table["status"].tolist() == ["error", "error", "ok", "ok"]
    assert table["raw"][0].startswith("JSONDecodeError: ") and table["raw"][1] == "openai: the response holds no choices"
    assert len(server.captured) == 5 and cache.count() == 2  # the 429 retried once; errors never cached


def test_a_corrupt_image_is_an_error_row_naming_it(
    questions: list[dict], small_catalog: Catalog, small_synth: Path, env: Path
) -> None:
    data = env / "synth"
    shutil.copytree(small_synth, data)
    broken_id = questions[0]["image_ids"][0]
    broken = data / small_catalog.image_path(broken_id).relative_to(small_synth)
    broken.write_bytes(b"\x89PNG not really")
    with fake_api("Yes") as server:
        table = evaluate(openai_spec(server), questions[:3], ResponseCache(env / "c.sqlite"), RunOptions(data=data, retry=FAST))
    assert table["status"].tolist()[0] == "error" and str(broken) in table["raw"][0]
    assert set(table["status"][1:]) <= {"ok", "error"} and (table["status"] == "ok").sum() == sum(
        broken_id not in q["image_ids"] for q in questions[:3]
    )


def test_a_corrupt_or_empty_encoded_jpeg_is_encoded_again(small_catalog: Catalog, tmp_path: Path) -> None:
    path = small_catalog.image_path(int(small_catalog.image_ids[0]))
    ref = ImageRef(int(small_catalog.image_ids[0]), path, "ab" * 32, path.stat().st_size)
    good = JpegEncoder(2048, tmp_path).encode(ref)
    stored = next(tmp_path.rglob("*.jpg"))
    for damage in (b"", good.data[: len(good.data) // 2], b"garbage"):
        stored.write_bytes(damage)
        again = JpegEncoder(2048, tmp_path).encode(ref)
        assert again.data == good.data and stored.read_bytes() == good.data


def test_retry_after_is_capped_jittered_and_reported() -> None:
    policy = RetryPolicy(max_attempts=2, max_delay=60.0)
    rng = __import__("random").Random(0)
    assert policy.delay(1, 90.0, rng) == 60.0 and policy.delay(1, 1e9, rng) == 60.0 and policy.delay(1, float("inf"), rng) == 60.0
    assert all(2.0 <= policy.delay(1, 2.0, rng) <= 2.4 for _ in range(50))
    assert {retry_after_seconds({"retry-after": v}) for v in ("soon", "nan", "Mon, 99 Foo")} == {None}
    waits: list[float] = []

    def always_busy() -> None:
        raise TransientError("429 slow down", retry_after=90.0)

    with pytest.raises(TransientError) as raised:
        call_with_retries(always_busy, policy, sleep=waits.append, rng=rng)
    assert (
        waits == [60.0]
        and str(raised.value) == "429 slow down (after 2 attempts) (the provider asked to wait 90 s; waits are capped at 60 s)"
    )


def test_a_dead_endpoint_trips_the_circuit_breaker(
    questions: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    table = evaluate(
        f"openai:gpt-4o@http://127.0.0.1:{port}/v1",
        questions,
        ResponseCache(env / "c.sqlite"),
        RunOptions(data=small_synth, retry=FAST, concurrency=1, max_unreachable=7),
    )
    # questions 1 and 2 fail their 3 attempts; the 7th failed attempt (question 3's first) stops the run
    assert table["status"].tolist() == ["error", "error"] + ["not_run"] * 6
    assert table["raw"][0].startswith("APIConnectionError: Connection error. (after 3 attempts)")
    assert table["raw"][2].startswith("not sent: the endpoint did not answer 7 attempts in a row (APIConnectionError")


# Validate before paying -----------------------------------------------------------------------------------


def _bad_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing-out-dir", "the folder"),
        ("out-is-dir", "is a directory"),
        ("not-an-object", "bad.jsonl:1: not a question object (a JSON list)"),
        ("lacks-a-field", "lacks answer"),
        ("empty-file", "holds no questions"),
        ("limit-0", "--limit must be at least 1, got 0"),
        ("limit-negative", "--limit must be at least 1, got -1"),
        ("max-attempts-0", "--max-attempts must be at least 1, got 0"),
        ("concurrency-0", "--concurrency must be at least 1, got 0"),
        ("concurrency-negative", "--concurrency must be at least 1, got -2"),
        ("cache-is-dir", "as the response cache"),
        ("cache-not-sqlite", "as the response cache"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_before_any_call(
    case: str,
    message: str,
    questions: list[dict],
    question_file: Path,
    small_synth: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    log = tmp_path / "calls.log"
    out, cache, qfile, extra = tmp_path / "r.parquet", tmp_path / "c.sqlite", question_file, []
    record = dict(questions[0])
    if case == "missing-out-dir":
        out = tmp_path / "nowhere" / "r.parquet"
    elif case == "out-is-dir":
        out = tmp_path
    elif case == "not-an-object":
        qfile = _bad_lines(tmp_path, ["[1, 2]"])
    elif case == "lacks-a-field":
        del record["answer"]
        qfile = _bad_lines(tmp_path, [json.dumps(questions[1]), json.dumps(record)])
    elif case == "empty-file":
        qfile = _bad_lines(tmp_path, [])
    elif case.startswith(("limit", "max-attempts", "concurrency")):
        flag, value = {
            "limit-0": ("--limit", "0"),
            "limit-negative": ("--limit", "-1"),
            "max-attempts-0": ("--max-attempts", "0"),
            "concurrency-0": ("--concurrency", "0"),
            "concurrency-negative": ("--concurrency", "-2"),
        }[case]
        extra = [flag, value]
    elif case == "cache-is-dir":
        cache = tmp_path
    elif case == "cache-not-sqlite":
        cache.write_text("this is not a database, it is a text file of some length " * 20)
    code = main(eval_argv(f"tests.fake_backends.CountingBackend?log={log}", qfile, out, cache, small_synth, *extra))
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1 and message in lines[0], lines
    assert not log.exists()


@pytest.mark.parametrize("content", [b"", b"PAR1 this is not parquet", "frame"])
def test_report_on_something_that_is_not_results_is_one_line(
    content: bytes | str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = tmp_path / "r.parquet"
    if content == "frame":
        pd.DataFrame({"a": [1, 2]}).to_parquet(path)
    else:
        path.write_bytes(content)
    code = main(["report", str(path)])
    lines = error_lines(capsys)
    assert code == 2 and len(lines) == 1 and str(path) in lines[0]


def test_report_on_an_empty_results_table_is_one_line(
    question_file: Path, small_synth: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(eval_argv("always-yes", question_file, tmp_path / "r.parquet", tmp_path / "c.sqlite", small_synth)) == 0
    pd.read_parquet(tmp_path / "r.parquet").iloc[:0].to_parquet(tmp_path / "empty.parquet")
    capsys.readouterr()
    assert main(["report", str(tmp_path / "empty.parquet")]) == 2
    assert error_lines(capsys) == [f"vhs: error: {tmp_path / 'empty.parquet'} holds no results"]


# Keys never leave the process ------------------------------------------------------------------------------


def test_secret_options_are_redacted_from_labels_and_text() -> None:
    assert public_spec(f"openai:gpt-4o@http://h:1/v1?api_key={SECRET}&max_tokens=4") == "openai:gpt-4o@http://h:1/v1?max_tokens=4"
    assert redact(f'models = "openai:gpt-4o?api_key={SECRET},anthropic:c?max_tokens=9&api_key={SECRET}"') == (
        'models = "openai:gpt-4o?api_key=***,anthropic:c?max_tokens=9&api_key=***"'
    )


def test_a_key_in_a_spec_reaches_no_artefact(small_synth: Path, env: Path) -> None:
    """`vhs eval` and a notebook run as `make reproduce` runs it (papermill, then `vhs redact`), then the book built
    from it: the key is in none of the results, cache, ledger, executed notebook or HTML."""
    pytest.importorskip("papermill")
    work = env / "work"
    (work / "data").mkdir(parents=True)
    shutil.copytree(small_synth, work / "data" / "synth" / "eval")
    process_env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV} | {
        "VHS_DATA": str(work / "data"),
        "MPLBACKEND": "Agg",
    }
    notebook = work / "book" / "chapter.ipynb"
    notebook.parent.mkdir()
    (work / "book" / "_config.yml").write_text('title: t\nexecute:\n  execute_notebooks: "off"\n')
    (work / "book" / "_toc.yml").write_text("format: jb-book\nroot: chapter\n")
    with fake_api("Yes") as server:
        model = openai_spec(server, f"api_key={SECRET}")
        qfile = work / "q.jsonl"
        vhs = [sys.executable, "-m", "vhs.cli"]
        subprocess.run(
            [
                *vhs,
                "questions",
                "--data",
                str(work / "data" / "synth" / "eval"),
                "--sizes",
                "2",
                "--per-size",
                "2",
                "--out",
                str(qfile),
            ],
            cwd=work,
            env=process_env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*vhs, "eval", "--model", model, "--questions", str(qfile), "--out", str(work / "r.parquet")],
            cwd=work,
            env=process_env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "jupytext",
                "--quiet",
                "--to",
                "ipynb",
                "--output",
                str(work / "in.ipynb"),
                str(REPO / "notebooks" / "02_commercial_models.py"),
            ],
            check=True,
            env=process_env,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "papermill",
                "--kernel",
                "python3",
                "--cwd",
                str(work),
                str(work / "in.ipynb"),
                str(notebook),
                "-p",
                "models",
                model,
                "-p",
                "sizes",
                "1,2",
                "-p",
                "per_size",
                "2",
            ],
            check=True,
            env=process_env,
            capture_output=True,
        )
    subprocess.run([*vhs, "redact", str(notebook)], check=True, env=process_env)
    subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", "--quiet", str(work / "book")],
        check=True,
        env=process_env,
        capture_output=True,
    )
    assert len(server.captured) > 2 and pd.read_parquet(work / "r.parquet")["model"].tolist() == ["openai:gpt-4o"] * 2
    artefacts = [p for p in work.rglob("*") if p.is_file() and not p.is_relative_to(work / "data" / "synth")]
    assert {p.suffix for p in artefacts} >= {".parquet", ".sqlite", ".csv", ".ipynb", ".html"}
    leaking = [str(p) for p in artefacts if SECRET.encode() in p.read_bytes()]
    assert leaking == [] and "api_key=***" in notebook.read_text()


# Several processes, one cache --------------------------------------------------------------------------------


def test_two_processes_on_one_cache_pay_once_for_each_question(small_catalog: Catalog, small_synth: Path, tmp_path: Path) -> None:
    qfile = tmp_path / "q.jsonl"
    total = qs.write_jsonl(qs.build_question_set(small_catalog, "single", (2,), 40, 0, progress=False), qfile)
    log, cache = tmp_path / "calls.log", tmp_path / "c.sqlite"
    model = f"tests.fake_backends.CountingBackend?delay=0.05&log={log}"
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vhs.cli",
                *eval_argv(model, qfile, tmp_path / f"r{n}.parquet", cache, small_synth, "--concurrency", "2"),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    errors = [run.communicate(timeout=120)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], errors
    calls = log.read_text().splitlines()
    assert len(calls) == len(set(calls)) == total
    for n in range(2):
        table = pd.read_parquet(tmp_path / f"r{n}.parquet")
        assert len(table) == total and set(table["status"]) == {"ok"}


def test_a_claim_by_a_live_owner_holds_and_a_dead_owners_is_taken_over(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    host = socket.gethostname()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert cache.claim("k1", f"{host}:{os.getpid()}:other") == "claimed"
    assert cache.claim("k1", f"{host}:{os.getpid()}:mine") == "held"
    assert cache.claim("k2", f"{host}:{dead}:gone") == "claimed"
    assert cache.claim("k2", f"{host}:{os.getpid()}:mine") == "claimed"
    cache.put("k1", {"backend": "b", "model": "m"}, Reply("Yes"), 0.1)
    assert cache.claim("k1", f"{host}:{os.getpid()}:mine") == "answered"


def test_a_locked_database_is_waited_for_not_raised(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite", busy_timeout=0.05)
    holder = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    threading.Timer(0.6, lambda: holder.execute("COMMIT")).start()
    cache.put("k", {"backend": "b", "model": "m"}, Reply("Yes"), 0.1)
    assert cache.get("k")[0].text == "Yes"
