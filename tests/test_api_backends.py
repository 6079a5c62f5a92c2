"""The real openai, anthropic and google-genai clients against a local fake server."""

import base64
import io
import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from tests.fake_api_server import THOUGHT_TEXT, FakeAPIServer, Scripted, fake_api
from vhs.cache import ResponseCache
from vhs.cli import main
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.errors import VhsError
from vhs.eval.retry import RetryPolicy
from vhs.eval.runner import RunOptions, evaluate
from vhs.metrics import summarize
from vhs.models.api_common import JpegEncoder, error_for_status, retry_after_seconds
from vhs.models.registry import load_backend
from vhs.protocol import AuthError, ImageRef, OverLimitError, TransientError

SECRET = "sk-test-never-store-me-42"
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY", "gemini": "GEMINI_API_KEY"}
PROVIDERS = ("openai", "anthropic", "gemini")


def spec(provider: str, server: FakeAPIServer, extra: str = "") -> str:
    model = {"openai": "gpt-4o", "anthropic": "claude-3-opus-20240229", "gemini": "gemini-1.5-pro"}[provider]
    base = server.url + ("/v1" if provider == "openai" else "")
    return f"{provider}:{model}@{base}" + (f"?{extra}" if extra else "")


def sent_images(provider: str, body: dict) -> list[bytes]:
    """The JPEG bytes a request carried, in order."""
    if provider == "openai":
        parts = body["messages"][0]["content"]
        return [base64.b64decode(p["image_url"]["url"].split(",", 1)[1]) for p in parts if p["type"] == "image_url"]
    if provider == "anthropic":
        return [base64.b64decode(p["source"]["data"]) for p in body["messages"][0]["content"] if p["type"] == "image"]
    parts = body["contents"][0]["parts"]
    return [base64.urlsafe_b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]


def sent_text(provider: str, body: dict) -> tuple[str, int, int]:
    """(prompt text, its index among the parts, number of parts)."""
    parts = body["messages"][0]["content"] if provider != "gemini" else body["contents"][0]["parts"]
    for index, part in enumerate(parts):
        text = part.get("text") if provider == "gemini" else (part["text"] if part["type"] == "text" else None)
        if text:
            return text, index, len(parts)
    raise AssertionError("no text part")


@pytest.fixture(scope="module")
def haystacks(small_catalog: Catalog) -> list[dict]:
    return list(qs.build_question_set(small_catalog, "single", (5,), 4, 0, progress=False))


def run(
    provider: str,
    server: FakeAPIServer,
    questions: list[dict],
    small_synth: Path,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: str = "",
    **options,
) -> pd.DataFrame:
    monkeypatch.setenv(KEY_ENV[provider], SECRET)
    cache = ResponseCache(env / "cache.sqlite")
    retry = options.pop("retry", RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02))
    try:
        return evaluate(
            spec(provider, server, extra), questions, cache, RunOptions(data=small_synth, retry=retry, concurrency=1, **options)
        )
    finally:
        cache.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_what_the_client_sends(
    provider: str,
    server: FakeAPIServer,
    haystacks: list[dict],
    small_catalog: Catalog,
    small_synth: Path,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = run(provider, server, haystacks[:1], small_synth, env, monkeypatch)
    assert table["status"].tolist() == ["ok"] and table["parsed"].tolist() == ["yes"]
    assert table["input_tokens"].tolist() == [123] and table["images_sent"].tolist() == [5]
    (request,) = server.captured
    question = haystacks[0]
    images = sent_images(provider, request.body)
    assert len(images) == 5
    encoder = JpegEncoder(4096, env / "check")
    for data, image_id in zip(images, question["image_ids"], strict=True):  # haystack order, each image exactly
        decoded = Image.open(io.BytesIO(data))
        assert decoded.format == "JPEG" and decoded.size == (64, 64)
        ref = ImageRef(image_id, small_catalog.image_path(image_id), "x" * 64, 0)
        assert data == encoder._jpeg(ref.path)
    text, index, parts = sent_text(provider, request.body)
    assert text == qs.PROMPT_PREFIX + question["question"]
    assert index == (0 if provider == "openai" else parts - 1)  # GPT-4o: text first; Claude, Gemini: images first
    model = request.body.get("model") or request.path.split("/models/")[1].split(":")[0]
    assert model == {"openai": "gpt-4o", "anthropic": "claude-3-opus-20240229", "gemini": "gemini-1.5-pro"}[provider]
    stored = b"".join(p.read_bytes() for p in env.glob("cache.sqlite*"))
    assert SECRET.encode() not in stored and SECRET not in table.to_json()
    assert SECRET not in json.dumps(request.body)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_429_with_retry_after_then_success(
    provider: str, server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script.append(Scripted(429, {"Retry-After": "0.3"}, "rate limited"))
    table = run(provider, server, haystacks[:1], small_synth, env, monkeypatch)
    assert table["status"].tolist() == ["ok"] and len(server.captured) == 2  # our retry only: the SDK's are off


@pytest.mark.parametrize("provider", PROVIDERS)
def test_500_is_retried_and_exhaustion_is_an_error(
    provider: str, server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script.extend([Scripted(500, message="boom")] * 3)
    table = run(provider, server, haystacks[:1], small_synth, env, monkeypatch)
    assert table["status"].tolist() == ["error"] and "500" in table["raw"].iloc[0] and len(server.captured) == 3
    server.script.append(Scripted(500))
    table = run(provider, server, haystacks[1:2], small_synth, env, monkeypatch)
    assert table["status"].tolist() == ["ok"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_413_is_not_answerable_and_not_retried(
    provider: str, server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script.append(Scripted(413, message="request too large"))
    table = run(provider, server, haystacks[:1], small_synth, env, monkeypatch)
    assert table["status"].tolist() == ["not_answerable:payload"] and len(server.captured) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stalled_response_times_out_and_is_retried(
    provider: str, server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script.append(Scripted(stall=1.5))
    table = run(provider, server, haystacks[:1], small_synth, env, monkeypatch, extra="timeout=0.5")
    assert table["status"].tolist() == ["ok"] and len(server.captured) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_401_stops_the_run(
    provider: str, server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script.append(Scripted(401, message="invalid x-api-key"))
    with pytest.raises(VhsError, match=f"{provider}:.*authentication failed .*401"):
        run(provider, server, haystacks, small_synth, env, monkeypatch)
    assert len(server.captured) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_key_means_not_run(provider: str, haystacks: list[dict], small_synth: Path, env: Path) -> None:
    table = evaluate(f"{provider}:some-model", haystacks, ResponseCache(env / "c.sqlite"), RunOptions(data=small_synth))
    assert set(table["status"]) == {"not_run"} and len(table) == len(haystacks)


def test_over_the_image_limit_nothing_is_sent(
    server: FakeAPIServer, small_catalog: Catalog, small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = list(qs.build_question_set(small_catalog, "single", (101,), 2, 0, progress=False))
    table = run("anthropic", server, big, small_synth, env, monkeypatch)
    assert set(table["status"]) == {"not_answerable:payload"} and server.captured == []


def test_openai_compatible_server_needs_no_key_and_can_put_images_first(
    server: FakeAPIServer, haystacks: list[dict], small_synth: Path, env: Path
) -> None:
    model = f"openai:Qwen/Qwen2-VL-7B-Instruct@{server.url}/v1?order=images-first"
    table = evaluate(model, haystacks[:1], ResponseCache(env / "c.sqlite"), RunOptions(data=small_synth))
    assert table["status"].tolist() == ["ok"] and table["model"].tolist() == ["openai:Qwen/Qwen2-VL-7B-Instruct"]
    body = server.captured[0].body
    assert body["model"] == "Qwen/Qwen2-VL-7B-Instruct" and sent_text("openai", body)[1:] == (5, 6)


def test_cli_states_the_cost_and_caps_requests(
    server: FakeAPIServer,
    haystacks: list[dict],
    small_synth: Path,
    env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    qfile = env / "q.jsonl"
    qs.write_jsonl(iter(haystacks), qfile)
    code = main(
        [
            "eval",
            "--model",
            spec("openai", server),
            "--questions",
            str(qfile),
            "--out",
            str(env / "r.parquet"),
            "--cache",
            str(env / "c.sqlite"),
            "--data",
            str(small_synth),
            "--max-requests",
            "2",
        ]
    )
    err = capsys.readouterr().err
    assert code == 0 and len(server.captured) == 2
    assert "openai:gpt-4o: about to send 2 requests with 10 images, about" in err
    table = pd.read_parquet(env / "r.parquet")
    assert table["status"].tolist() == ["ok", "ok", "not_run", "not_run"]
    assert table["raw"].iloc[3] == "not sent: --max-requests 2"


def test_each_image_is_encoded_once(tmp_path: Path, small_catalog: Catalog, monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = JpegEncoder(1568, tmp_path)
    calls: list[Path] = []
    original = encoder._jpeg
    monkeypatch.setattr(encoder, "_jpeg", lambda path: calls.append(path) or original(path))
    image_id = int(small_catalog.image_ids[0])
    ref = ImageRef(image_id, small_catalog.image_path(image_id), "ab" * 32, 0)
    first, second = encoder.encode(ref), encoder.encode(ref)
    assert first == second and len(calls) == 1
    again = JpegEncoder(1568, tmp_path).encode(ref)  # a new run reads the disk copy
    assert again.data == first.data and len(calls) == 1


def test_large_images_are_resized_to_the_useful_maximum(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000), "red").save(path)
    encoded = JpegEncoder(1568, tmp_path / "enc").encode(ImageRef(1, path, "cd" * 32, 0))
    assert (encoded.width, encoded.height) == (1568, 1176)


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (429, "slow down", TransientError),
        (503, "overloaded", TransientError),
        (529, "overloaded", TransientError),
        (401, "bad key", AuthError),
        (403, "forbidden", AuthError),
        (413, "too large", OverLimitError),
        (400, "Too many images in request. Max is 100", OverLimitError),
        (400, "This model's maximum context length is 128000 tokens", OverLimitError),
    ],
)
def test_status_mapping(status: int, message: str, kind: type) -> None:
    assert isinstance(error_for_status(status, message, {}), kind)


def test_overlimit_kinds_and_retry_after_forms() -> None:
    assert error_for_status(400, "prompt is too long: 250000 tokens > 200000 maximum", {}).kind == "context"
    assert error_for_status(400, "Too many images in request", {}).kind == "payload"
    assert not isinstance(error_for_status(400, "invalid temperature", {}), (TransientError, OverLimitError, AuthError))
    assert retry_after_seconds({"retry-after": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after_seconds({}) is None


# Reasoning models: the fake server refuses what the real APIs refuse (`fake_api_server.refusal`).


def test_gpt5_gets_max_completion_tokens_and_no_temperature(
    haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    with fake_api("Yes") as server:
        qfile = env / "q.jsonl"
        qs.write_jsonl(iter(haystacks), qfile)
        code = main(
            [
                "eval",
                "--model",
                f"openai:gpt-5@{server.url}/v1?reasoning_effort=low",
                "--questions",
                str(qfile),
                "--out",
                str(env / "r.parquet"),
                "--cache",
                str(env / "c.sqlite"),
                "--data",
                str(small_synth),
            ]
        )
    table = pd.read_parquet(env / "r.parquet")
    assert code == 0 and set(table["status"]) == {"ok"} and table["correct"].sum() == (table["answer"] == "yes").sum()
    body = server.captured[0].body
    assert (
        body["max_completion_tokens"] == 8192
        and "max_tokens" not in body
        and "temperature" not in body
        and body["reasoning_effort"] == "low"
    )
    assert table["reasoning_tokens"].tolist() == [64] * len(haystacks)
    assert "reasoning_tokens" in capsys.readouterr().out


def test_a_reasoning_reply_cut_by_the_cap_is_truncated_not_wrong(
    haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with fake_api("Yes") as server:
        table = evaluate(
            f"openai:o3@{server.url}/v1?max_tokens=16",
            haystacks[:2],
            ResponseCache(env / "c.sqlite"),
            RunOptions(data=small_synth),
        )
    assert table["status"].tolist() == ["truncated"] * 2 and not table["correct"].any() and table["raw"].tolist() == ["", ""]
    summary = summarize(table)
    assert summary["scored"].tolist() == [0] and summary["truncated"].tolist() == [1.0]
    assert server.captured[0].body["max_completion_tokens"] == 16


def test_claude_extended_thinking(haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_api("No") as server:
        table = run("anthropic", server, haystacks[:1], small_synth, env, monkeypatch, "thinking_budget=2048")
    body = server.captured[0].body
    assert (
        body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
        and body["max_tokens"] == 2048 + 1024
        and "temperature" not in body
    )
    assert (
        table["status"].tolist() == ["ok"] and table["raw"].tolist() == ["No"] and table["reasoning"].tolist() == [THOUGHT_TEXT]
    )
    for bad, message in (
        ("thinking_budget=512", "at least 1024"),
        ("thinking_budget=2048&max_tokens=1000", "must exceed"),
        ("thinking_budget=2048&temperature=0", "default temperature"),
    ):
        with pytest.raises(VhsError, match=message):
            load_backend(f"anthropic:claude-sonnet-4-5@{server.url}?api_key=k&{bad}")


def test_gemini_thinking(haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    with fake_api("Yes") as server:
        table = evaluate(
            f"gemini:gemini-2.5-flash@{server.url}?thinking_budget=512&include_thoughts=1",
            haystacks[:1],
            ResponseCache(env / "c.sqlite"),
            RunOptions(data=small_synth, concurrency=1),
        )
        default = run("gemini", server, haystacks[1:2], small_synth, env, monkeypatch)
    config = server.captured[0].body["generationConfig"]
    assert config["thinkingConfig"] == {"thinking_budget": 512, "include_thoughts": True} and config["maxOutputTokens"] == 8192
    assert table["status"].tolist() == ["ok"] and table["raw"].tolist() == ["Yes"]
    assert table["reasoning"].tolist() == [THOUGHT_TEXT] and table["reasoning_tokens"].tolist() == [64]
    assert (
        server.captured[1].body["generationConfig"]["maxOutputTokens"] == 16 and default["reasoning_tokens"].isna().all()
    )  # 1.5 Pro: no thinking


def test_gemini_2_5_gets_room_to_think(
    haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", SECRET)
    with fake_api("Yes") as server:
        table = evaluate(
            f"gemini:gemini-2.5-pro@{server.url}", haystacks[:1], ResponseCache(env / "c.sqlite"), RunOptions(data=small_synth)
        )
        cut = evaluate(
            f"gemini:gemini-2.5-pro@{server.url}?max_tokens=16",
            haystacks[:1],
            ResponseCache(env / "c.sqlite"),
            RunOptions(data=small_synth),
        )
    assert table["status"].tolist() == ["ok"] and server.captured[0].body["generationConfig"]["maxOutputTokens"] == 8192
    assert cut["status"].tolist() == ["truncated"] and cut["stop_reason"].tolist() == ["max_tokens"]


def test_openrouter_grok_4_with_its_reasoning_object(
    haystacks: list[dict], small_synth: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", SECRET)
    with fake_api("Yes") as server:
        table = evaluate(
            f"openrouter:x-ai/grok-4@{server.url}/v1?reasoning_max_tokens=2000",
            haystacks[:1],
            ResponseCache(env / "c.sqlite"),
            RunOptions(data=small_synth),
        )
    request = server.captured[0]
    assert request.headers["authorization"] == f"Bearer {SECRET}" and request.body["model"] == "x-ai/grok-4"
    assert (
        request.body["reasoning"] == {"max_tokens": 2000}
        and request.body["max_tokens"] == 8192
        and "temperature" not in request.body
    )
    assert table["status"].tolist() == ["ok"] and table["reasoning"].tolist() == [THOUGHT_TEXT]
    with pytest.raises(VhsError, match="not both"):
        load_backend(f"openrouter:x-ai/grok-4@{server.url}/v1?reasoning_effort=high&reasoning_max_tokens=5")
