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


def _success(provider: str, model: str, text: str) -> dict:
    if provider == "openai":
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 123, "completion_tokens": 2, "total_tokens": 125}}
    if provider == "anthropic":
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 123, "output_tokens": 2}}
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 123, "candidatesTokenCount": 2, "totalTokenCount": 125}}


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
            self._send(200, _success(provider, model, self.server.reply), {})

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
