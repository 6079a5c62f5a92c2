"""A local HTTP server that speaks just enough of the OpenAI, Anthropic and Gemini APIs for tests.

It records every request (path, headers, JSON body) and answers from a script: each scripted entry
is used for one request (a status with headers, a raw body, or a stall longer than the client's
timeout); once the script is empty it answers `reply` in the provider's success format, `delay`
seconds after the request arrived.
"""

import contextlib
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.http_fixtures import in_thread


@dataclass
class Scripted:
    """One scripted answer: an HTTP status (with headers), a raw `body` instead of the provider's JSON, or `stall`
    seconds of silence first."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    message: str = "scripted"
    stall: float = 0.0
    body: str | None = None


@dataclass
class Captured:
    """One request as the server received it."""

    path: str
    headers: dict[str, str]
    body: dict


def provider_of(path: str) -> str:
    """Which API a request path belongs to."""
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    if ":generateContent" in path:
        return "gemini"
    return "unknown"


# What the real APIs do with reasoning models, as far as these tests need it: OpenAI's reasoning families take
# `max_completion_tokens` and the default temperature only; Anthropic's thinking needs a budget of at least 1,024
# below `max_tokens` and no temperature but 1; Gemini 2.5 thinks by default. Thinking spends THOUGHT tokens of the
# output cap before the answer; a cap that leaves no room ends the reply empty, cut by the cap.
OPENAI_REASONING = ("gpt-5", "o1", "o3", "o4")
THOUGHT, THOUGHT_TEXT = 64, "The needle is the second image; it shows the target."


def refusal(provider: str, model: str, body: dict) -> str | None:
    """The 400 message the real API gives for this request, or None if it accepts it."""
    if provider == "openai" and model.startswith(OPENAI_REASONING):
        if "max_tokens" in body:
            return "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
        if body.get("temperature", 1) != 1:
            return (
                f"Unsupported value: 'temperature' does not support {body['temperature']} with this model."
                " Only the default (1) value is supported."
            )
    if provider == "anthropic" and "thinking" in body:
        budget = body["thinking"]["budget_tokens"]
        if budget < 1024:
            return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
        if body["max_tokens"] <= budget:
            return "`max_tokens` must be greater than `thinking.budget_tokens`"
        if body.get("temperature", 1) != 1:
            return "`temperature` may only be set to 1 when thinking is enabled"
    return None


def _thinks(provider: str, model: str, body: dict) -> bool:
    if provider == "openai":
        return model.startswith(OPENAI_REASONING) or model.startswith("x-ai/") or "reasoning" in body
    if provider == "anthropic":
        return "thinking" in body
    return model.startswith("gemini-2.5") and _thinking_config(body, "thinkingBudget", "thinking_budget") != 0


def _thinking_config(body: dict, *names: str) -> object:
    """A thinkingConfig field, by either of its JSON spellings (the API accepts camelCase and snake_case)."""
    config = body.get("generationConfig", {}).get("thinkingConfig", {})
    return next((config[n] for n in names if n in config), None)


def _success(provider: str, model: str, text: str, body: dict) -> dict:
    thinks = _thinks(provider, model, body)
    cap = (
        body.get("max_completion_tokens")
        or body.get("max_tokens")
        or body.get("generationConfig", {}).get("maxOutputTokens")
        or 10**6
    )
    cut = thinks and cap < THOUGHT + 2
    text = "" if cut else text
    if provider == "openai":
        message = {"role": "assistant", "content": text} | ({"reasoning": THOUGHT_TEXT} if thinks and "/" in model else {})
        usage = {"prompt_tokens": 123, "completion_tokens": 2 + THOUGHT * thinks, "total_tokens": 125 + THOUGHT * thinks}
        if thinks:
            usage["completion_tokens_details"] = {"reasoning_tokens": min(cap, THOUGHT)}
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": "length" if cut else "stop"}],
            "usage": usage,
        }
    if provider == "anthropic":
        thought = [{"type": "thinking", "thinking": THOUGHT_TEXT, "signature": "sig"}] if thinks else []
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [*thought, {"type": "text", "text": text}],
            "stop_reason": "max_tokens" if cut else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 123, "output_tokens": 2 + THOUGHT * thinks},
        }
    include = _thinking_config(body, "includeThoughts", "include_thoughts")
    parts = ([{"text": THOUGHT_TEXT, "thought": True}] if thinks and include else []) + ([{"text": text}] if text else [])
    usage = {"promptTokenCount": 123, "candidatesTokenCount": 2, "totalTokenCount": 125} | (
        {"thoughtsTokenCount": min(cap, THOUGHT)} if thinks else {}
    )
    return {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "MAX_TOKENS" if cut else "STOP", "index": 0}
        ],
        "usageMetadata": usage,
    }


def _failure(provider: str, status: int, message: str) -> dict:
    if provider == "openai":
        return {"error": {"message": message, "type": "error", "code": str(status)}}
    if provider == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    return {"error": {"code": status, "message": message, "status": "FAILED"}}


class FakeAPIServer(ThreadingHTTPServer):
    """Records requests; answers scripted failures, then `reply`."""

    daemon_threads = True

    def __init__(self, reply: str = "Yes") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = reply
        self.delay = 0.0
        self.script: deque[Scripted] = deque()
        self.captured: list[Captured] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_script(self) -> Scripted | None:
        with self._lock:
            return self.script.popleft() if self.script else None


class _Handler(BaseHTTPRequestHandler):
    server: FakeAPIServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.captured.append(Captured(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        provider = provider_of(self.path.split("?")[0])
        scripted = self.server.next_script()
        if scripted and scripted.stall:
            time.sleep(scripted.stall)
        elif self.server.delay:
            time.sleep(self.server.delay)
        if scripted and scripted.body is not None:
            self._send(scripted.status, scripted.body, scripted.headers)
        elif scripted and scripted.status != 200:
            self._send(scripted.status, _failure(provider, scripted.status, scripted.message), scripted.headers)
        else:
            model = body.get("model") or self.path.split("/models/")[-1].split(":")[0]
            refused = refusal(provider, model, body)
            if refused:
                self._send(400, _failure(provider, 400, refused), {})
            else:
                self._send(200, _success(provider, model, self.server.reply, body), {})

    def _send(self, status: int, payload: dict | str, headers: dict[str, str]) -> None:
        data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)


def fake_api(reply: str = "Yes") -> contextlib.AbstractContextManager[FakeAPIServer]:
    """A FakeAPIServer on 127.0.0.1, running for the duration of the block."""
    return in_thread(FakeAPIServer(reply))
