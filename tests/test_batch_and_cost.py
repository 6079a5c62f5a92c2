"""Dollars and batches: the price table, cost_usd, the estimate, --max-usd, and `vhs eval --batch` through the real
openai, anthropic and google-genai clients against the loopback server's batch endpoints."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import PROVIDER_ENV
from tests.fake_api_server import REPORTED_COST, FakeAPIServer
from vhs.book import commercial_models
from vhs.cache import ResponseCache
from vhs.cli import main
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.eval.estimate import COCO_MEAN_JPEG_BYTES, estimate_paper_run, images_per_request, offline_backend, sent_bytes
from vhs.eval.retry import RetryPolicy
from vhs.eval.runner import HaystackImages, RunOptions, evaluate, evaluate_models
from vhs.models import anthropic_messages, gemini, openai_chat
from vhs.models.api_common import text_tokens
from vhs.models.prices import BATCH_DISCOUNT, PRICES, price_of
from vhs.models.registry import load_backend

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
MODEL = {"openai": "gpt-4o", "anthropic": "claude-3-opus-20240229", "gemini": "gemini-1.5-pro"}
FAST = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)


def spec(provider: str, server: FakeAPIServer, model: str = "", extra: str = "") -> str:
    base = server.url + ("/v1" if provider in ("openai", "openrouter") else "")
    return f"{provider}:{model or MODEL[provider]}@{base}" + (f"?{extra}" if extra else "")


@pytest.fixture(scope="module")
def haystacks(small_catalog: Catalog) -> list[dict]:
    return list(qs.build_question_set(small_catalog, "single", (3,), 4, 0, progress=False))


def run(model: str, questions: list[dict], small_synth: Path, cache_path: Path, **options) -> pd.DataFrame:
    cache = ResponseCache(cache_path)
    try:
        return evaluate(model, questions, cache, RunOptions(data=small_synth, retry=FAST, concurrency=1, **options))
    finally:
        cache.close()


# The price table ------------------------------------------------------------------------------------


def test_a_dated_snapshot_takes_its_models_price_and_an_unknown_id_has_none() -> None:
    assert price_of("anthropic", "claude-sonnet-4-5-20250929") is PRICES[("anthropic", "claude-sonnet-4-5")]
    assert price_of("openai", "gpt-4o-2024-08-06") is PRICES[("openai", "gpt-4o")]
    assert price_of("openai", "gpt-4o-2024-05-13").input == 5.00  # the paper's snapshot keeps its own row
    assert price_of("openai", "gpt-4o-mini-2024-07-18") is PRICES[("openai", "gpt-4o-mini")]  # never gpt-4o's
    assert price_of("openai", "gpt-4.5-turbo") is None and price_of("gemini", "gpt-4o") is None


def test_every_row_has_its_source_and_date() -> None:
    for price in PRICES.values():
        assert price.source.startswith("https://") and len(price.as_of) == 10 and price.as_of[4] == "-"
        assert 0 < price.cached <= price.input < price.output


def test_dollars_cached_input_long_context_and_batch() -> None:
    gpt4o = PRICES[("openai", "gpt-4o")]
    assert gpt4o.dollars(1_000_000, 100_000) == pytest.approx(2.50 + 1.00)
    assert gpt4o.dollars(1_000_000, 0, cached_tokens=400_000) == pytest.approx(0.6 * 2.50 + 0.4 * 1.25)
    assert gpt4o.dollars(1_000_000, 100_000, batch=True) == pytest.approx((2.50 + 1.00) * BATCH_DISCOUNT)
    pro = PRICES[("gemini", "gemini-2.5-pro")]
    assert pro.dollars(200_000, 0) == pytest.approx(0.25) and pro.dollars(200_001, 0) == pytest.approx(200_001 * 2.50 / 1e6)


# What a reply cost ------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_cost_usd_is_the_usage_at_list_price(
    provider: str, server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV[provider], "sk-test")
    table = run(spec(provider, server), haystacks[:1], small_synth, env / "c.sqlite")
    price = price_of(provider, MODEL[provider])
    assert table["cost_usd"].tolist() == [pytest.approx(price.dollars(123, 2))]  # the server's usage: 123 in, 2 out
    cached = run(spec(provider, server), haystacks[:1], small_synth, env / "c.sqlite")
    assert cached["cached"].tolist() == [True] and cached["cost_usd"].tolist() == table["cost_usd"].tolist()


def test_gemini_thoughts_are_billed_as_output(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "sk-test")
    table = run(spec("gemini", server, "gemini-2.5-pro"), haystacks[:1], small_synth, env / "c.sqlite")
    assert table["output_tokens"].tolist() == [2 + 64] and table["reasoning_tokens"].tolist() == [64]
    assert table["cost_usd"].iloc[0] == pytest.approx(PRICES[("gemini", "gemini-2.5-pro")].dollars(123, 66))


def test_openrouter_reports_its_own_cost(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test")
    table = run(spec("openrouter", server, "x-ai/grok-4"), haystacks[:1], small_synth, env / "c.sqlite")
    assert server.captured[0].body["usage"] == {"include": True}
    assert table["cost_usd"].tolist() == [REPORTED_COST]  # OpenRouter's figure, not our list price


# --max-usd -----------------------------------------------------------------------------------------------


def test_max_usd_sends_only_while_spent_plus_the_worst_case_fits(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = spec("openai", server, extra="max_tokens=400")
    backend = load_backend(model)
    cache = ResponseCache(env / "probe.sqlite")
    worst = sum(backend.dollars(HaystackImages(cache, small_synth).request(haystacks[0])))
    cache.close()
    actual = price_of("openai", "gpt-4o").dollars(123, 2)
    cap = worst + 2.5 * actual  # the first call fits; so do the second and third; the fourth would pass the cap
    table = run(model, haystacks, small_synth, env / "c.sqlite", max_usd=cap)
    assert table["status"].tolist() == ["ok", "ok", "ok", "not_run"] and len(server.captured) == 3
    assert table["raw"].iloc[3] == f"not sent: --max-usd {cap:g} would be passed (${3 * actual:.4f} spent)"
    assert table["cost_usd"].sum() <= cap


def test_max_usd_below_one_worst_case_sends_nothing(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    table = run(spec("openai", server, "gpt-5"), haystacks, small_synth, env / "c.sqlite", max_usd=0.01)
    assert table["status"].tolist() == ["not_run"] * 4 and server.captured == []


def test_max_usd_on_a_model_without_a_price_is_one_line_before_any_call(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, capsys: pytest.CaptureFixture
) -> None:
    qfile = env / "q.jsonl"
    qs.write_jsonl(iter(haystacks), qfile)
    argv = ["eval", "--model", spec("openai", server, "my-finetune"), "--questions", str(qfile), "--out", str(env / "r.parquet")]
    code = main([*argv, "--data", str(small_synth), "--cache", str(env / "c.sqlite"), "--max-usd", "1"])
    err = [line for line in capsys.readouterr().err.splitlines() if "%|" not in line and line.strip()]
    assert code == 2 and server.captured == []
    assert err == [
        "vhs: error: --max-usd: the price of openai:my-finetune is unknown (vhs.models.prices lists none), so it cannot be capped"
    ]


def test_the_estimate_before_a_paid_run_names_dollars_or_says_price_unknown(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, capsys: pytest.CaptureFixture
) -> None:
    for model, said in (
        (spec("openai", server), "of input and at most $"),
        (spec("openai", server, "my-finetune"), "price unknown"),
    ):
        run(model, haystacks[:1], small_synth, env / "c.sqlite")
        assert said in capsys.readouterr().err


# --batch ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_batch_run_answers_as_a_direct_run_at_half_price_and_resubmits_only_failures(
    provider: str, server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV[provider], "sk-test")
    direct = run(spec(provider, server), haystacks, small_synth, env / "direct.sqlite")
    direct_bodies = [c.body for c in server.captured]
    server.captured.clear()
    server.batch_polls, server.batch_failures = 2, {1}
    table = run(spec(provider, server), haystacks, small_synth, env / "c.sqlite", batch=True, poll_seconds=0.01)
    assert table["status"].tolist() == ["ok", "error", "ok", "ok"] and "batch" in table["raw"].iloc[1]
    ok = table["status"] == "ok"
    assert table[ok]["parsed"].tolist() == direct[ok]["parsed"].tolist()
    assert table[ok]["cost_usd"].tolist() == pytest.approx((direct[ok]["cost_usd"] * 0.5).tolist())
    assert len(server.batch_created()) == 1 and not any(
        c.path.endswith(("completions", "/messages", ":generateContent")) for c in server.captured
    )
    (batch,) = server.batches.values()
    sent = [body for _, _, body in batch.items]
    if provider == "openai":
        assert sent == direct_bodies  # the very same request bodies
    with sqlite3.connect(env / "c.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 3  # the failure is not cached
        assert db.execute("SELECT COUNT(*) FROM batches WHERE ended IS NOT NULL").fetchone()[0] == 1
    server.batch_failures = set()
    again = run(spec(provider, server), haystacks, small_synth, env / "c.sqlite", batch=True, poll_seconds=0.01)
    assert again["status"].tolist() == ["ok"] * 4 and again["cached"].tolist() == [True, False, True, True]
    assert len(server.batch_created()) == 2 and len(server.batches[list(server.batches)[-1]].items) == 1


def test_a_provider_without_a_batch_api_is_one_line_before_any_call(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", "sk-test")
    qfile = env / "q.jsonl"
    qs.write_jsonl(iter(haystacks), qfile)
    argv = ["eval", "--model", spec("openrouter", server, "x-ai/grok-4"), "--questions", str(qfile), "--batch"]
    code = main([*argv, "--out", str(env / "r.parquet"), "--data", str(small_synth), "--cache", str(env / "c.sqlite")])
    assert code == 2 and server.captured == []
    assert "vhs: error: --batch: openrouter:x-ai/grok-4 has no batch API in vhs" in capsys.readouterr().err


def test_a_batch_run_killed_while_waiting_resumes_polling_without_resubmitting(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, tmp_path: Path
) -> None:
    qfile = tmp_path / "q.jsonl"
    qs.write_jsonl(iter(haystacks), qfile)
    environment = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV} | {
        "VHS_DATA": str(tmp_path / "data"),
        "OPENAI_API_KEY": "sk-test",
    }
    argv = [sys.executable, "-m", "vhs.cli", "eval", "--model", spec("openai", server), "--questions", str(qfile)]
    argv += ["--out", str(tmp_path / "r.parquet"), "--cache", str(tmp_path / "c.sqlite"), "--data", str(small_synth)]
    argv += ["--batch", "--poll-seconds", "0.05"]
    server.batch_hold = True
    process = subprocess.Popen(argv, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(c.path.startswith("/v1/batches/") for c in server.captured) and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert len(server.batch_created()) == 1 and not (tmp_path / "r.parquet").exists()
    server.batch_hold = False
    done = subprocess.run(argv, cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(server.batch_created()) == 1  # the first batch was polled again, not submitted again
    assert "resuming 1 submitted batch(es) with 4 requests" in done.stderr
    table = pd.read_parquet(tmp_path / "r.parquet")
    assert table["status"].tolist() == ["ok"] * 4 and table["cost_usd"].notna().all()
    report = subprocess.run(
        [sys.executable, "-m", "vhs.cli", "report", str(tmp_path / "r.parquet")], cwd=REPO, capture_output=True, text=True
    )
    assert "cost_usd" in report.stdout and "$" in report.stdout
    assert json.loads(server.files[next(iter(server.files))].splitlines()[0])["url"] == "/v1/chat/completions"


# What a run would cost, with nothing sent ----------------------------------------------------------------


def test_images_per_request_follow_the_declared_limits() -> None:
    coco = sent_bytes(COCO_MEAN_JPEG_BYTES)
    expected = {
        "openai:gpt-4o": min(openai_chat.MAX_IMAGES_PER_REQUEST, openai_chat.MAX_IMAGE_BYTES_PER_REQUEST // coco),
        "anthropic:claude-3-opus-20240229": anthropic_messages.MAX_IMAGES_PER_REQUEST,
        "gemini:gemini-1.5-pro": gemini.MAX_REQUEST_BYTES // coco,
    }
    for model, count in expected.items():
        assert images_per_request(offline_backend(model), coco) == count
    assert list(expected.values()) == [241, 100, 96]


def test_a_paper_sized_estimate_prices_each_size_within_the_limits(env: Path) -> None:
    backend = offline_backend("gemini:gemini-1.5-pro")
    prompt = "For the image with a dog, is there a cat?"
    estimate = estimate_paper_run(backend, (1, 50, 100), prompt)
    assert (estimate.requests, estimate.not_answerable, estimate.images) == (2000, 1000, 51_000)  # 100 COCO images pass 20 MB
    price = PRICES[("gemini", "gemini-1.5-pro")]
    tokens = [text_tokens(prompt) + size * 258 for size in (1, 50)]  # 640 x 480: one 768-px tile of 258 tokens
    assert estimate.input_tokens == 1000 * sum(tokens)
    assert estimate.input_usd == pytest.approx(1000 * sum(price.dollars(t, 0) for t in tokens))
    assert estimate.output_usd == pytest.approx(1000 * 2 * 16 * price.output / 1e6)


def test_chapter_2s_tables_need_no_key_and_send_nothing(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path
) -> None:
    models = f"{spec('anthropic', server)},{spec('openai', server, 'gpt-5')}"
    cache = ResponseCache(env / "c.sqlite")
    results = evaluate_models({m: m for m in models.split(",")}, haystacks, cache, RunOptions(data=small_synth))
    cache.close()
    sent = len(server.captured)  # the local endpoint needs no key: its run answered
    limits, costs = commercial_models(f"{models},random", haystacks, (1, 2, 3, 200), small_synth)  # a free model: no row
    assert results.groupby("model", sort=False)["status"].first().tolist() == ["not_run", "ok"]  # a local endpoint needs no key
    assert sent == 4 and len(server.captured) == sent  # the tables sent nothing
    assert limits["in the paper"].tolist() == ["yes", ""]
    assert limits["thinks"].tolist() == ["no", "yes"] and limits["output cap"].tolist() == ["16", "8,192"]
    assert limits["reasoning options"].tolist() == ["?thinking_budget", "?reasoning_effort"]
    assert limits["images per request: here · COCO"].tolist() == ["100 · 100", "500 · 241"]
    assert costs[("list price", "$ / 1M in · out")].tolist() == ["15 · 75", "1.25 · 10"]
    assert costs[("paper-sized", "requests")].tolist() == ["3,000 (1,000 over the limits)", "4,000"]  # Claude: 100 images
    assert all(value.startswith("$") for value in costs[("paper-sized", "input")])
