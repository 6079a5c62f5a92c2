"""A local HTTP server that speaks just enough of the OpenAI, Anthropic and Gemini APIs for tests.

It records every request (path, headers, JSON body) and answers from a script: each scripted entry
is used for one request (a status with headers, a raw body, or a stall longer than the client's
timeout); once the script is empty it answers `reply` in the provider's success format, `delay`
seconds after the request arrived.

It also runs the three batch APIs the SDKs call: OpenAI's file upload, batch create and retrieve and
file content; Anthropic's Message Batches create, retrieve and results; Gemini's batchGenerateContent
and batch get. A batch ends after `batch_polls` retrieves (never while `batch_hold` is set); the items
at the positions in `batch_failures` fail, the others are answered as the direct endpoint would.
"""

import contextlib
import email.parser
import itertools
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
REPORTED_COST = 0.00042


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
        if (body.get("usage") or {}).get("include"):  # OpenRouter's usage accounting: the dollars it billed
            usage["cost"] = REPORTED_COST
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


@dataclass
class FakeBatch:
    """A submitted batch: its provider, its items (custom id, model, request body) and retrieves until it ends."""

    provider: str
    items: list[tuple[str, str, dict]]
    polls_left: int
    input_file: str = ""


class FakeAPIServer(ThreadingHTTPServer):
    """Records requests; answers scripted failures, then `reply`; runs batches."""

    daemon_threads = True

    def __init__(self, reply: str = "Yes") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.reply = reply
        self.delay = 0.0
        self.script: deque[Scripted] = deque()
        self.captured: list[Captured] = []
        self._lock = threading.Lock()
        self.files: dict[str, str] = {}
        self.batches: dict[str, FakeBatch] = {}
        self.batch_polls = 1
        self.batch_hold = False
        self.batch_failures: set[int] = set()
        self._ids = itertools.count(1)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    def answer(self, provider: str, model: str, body: dict) -> tuple[int, dict]:
        """What the direct endpoint answers this body: (status, JSON)."""
        refused = refusal(provider, model, body)
        if refused:
            return 400, _failure(provider, 400, refused)
        return 200, _success(provider, model, self.reply, body)

    def batch_created(self) -> list[Captured]:
        """The requests that created a batch (OpenAI's, Anthropic's, Gemini's)."""
        return [c for c in self.captured if c.path.endswith(("/batches", ":batchGenerateContent"))]

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
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        form = self.headers.get("Content-Type", "").startswith("multipart/form-data")
        body = {"form": _form(self.headers["Content-Type"], raw)} if form else json.loads(raw or b"{}")
        self.server.captured.append(Captured(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        path = self.path.split("?")[0]
        if path.endswith(("/files", "/batches", ":batchGenerateContent")):
            self._send(*_batch_post(self.server, path, body), {})
            return
        provider = provider_of(path)
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
            status, answer = self.server.answer(provider, model, body)
            self._send(status, answer, {})

    def do_GET(self) -> None:
        self.server.captured.append(Captured(self.path, {k.lower(): v for k, v in self.headers.items()}, {}))
        self._send(*_batch_get(self.server, self.path.split("?")[0]), {})

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


def _form(content_type: str, raw: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body (OpenAI's file upload), by name."""
    message = email.parser.BytesParser().parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
        for part in message.get_payload()
    }


def _batch_post(server: FakeAPIServer, path: str, body: dict) -> tuple[int, dict]:
    """File upload and batch creation, for the three providers."""
    if path.endswith("/files"):
        file_id = server.new_id("file-")
        server.files[file_id] = body["form"]["file"]
        return 200, _openai_file(file_id, len(server.files[file_id]))
    if path.endswith("/messages/batches"):
        items = [(r["custom_id"], r["params"]["model"], r["params"]) for r in body["requests"]]
        return 200, _anthropic_batch(server, _new_batch(server, "anthropic", items, "msgbatch_"))
    if path.endswith(":batchGenerateContent"):
        model = path.split("/models/")[-1].split(":")[0]
        requests = body["batch"]["inputConfig"]["requests"]["requests"]
        items = [(r["metadata"]["custom_id"], model, r["request"] | {"metadata": r["metadata"]}) for r in requests]
        return 200, _gemini_batch(server, _new_batch(server, "gemini", items, "batches/"))
    lines = [json.loads(line) for line in server.files[body["input_file_id"]].splitlines() if line.strip()]
    items = [(line["custom_id"], line["body"]["model"], line["body"]) for line in lines]
    batch_id = _new_batch(server, "openai", items, "batch_")
    server.batches[batch_id].input_file = body["input_file_id"]
    return 200, _openai_batch(server, batch_id)


def _batch_get(server: FakeAPIServer, path: str) -> tuple[int, dict | str]:
    """Batch retrieval and results, for the three providers."""
    if path.endswith("/content"):
        return 200, server.files[path.split("/files/")[1].removesuffix("/content")]
    if path.endswith("/results"):
        batch_id = path.split("/messages/batches/")[1].removesuffix("/results")
        return 200, "\n".join(json.dumps(line) for line in _anthropic_results(server, batch_id)) + "\n"
    batch_id = path.rsplit("/", 1)[-1]
    name = batch_id if batch_id in server.batches else f"batches/{batch_id}"  # Gemini's names are "batches/ID"
    if name not in server.batches:
        return 404, {"error": {"message": f"no batch {name}"}}
    batch = server.batches[name]
    if not server.batch_hold:
        batch.polls_left -= 1
    render = {"openai": _openai_batch, "anthropic": _anthropic_batch, "gemini": _gemini_batch}[batch.provider]
    return 200, render(server, name)


def _new_batch(server: FakeAPIServer, provider: str, items: list[tuple[str, str, dict]], prefix: str) -> str:
    batch_id = server.new_id(prefix)
    server.batches[batch_id] = FakeBatch(provider, items, server.batch_polls)
    return batch_id


def _outcomes(server: FakeAPIServer, batch: FakeBatch) -> list[tuple[str, int, dict]]:
    """Each item's (custom id, status, JSON answer); the positions in `batch_failures` fail with a 500."""
    return [
        (custom_id, 500, _failure(batch.provider, 500, "batch item failed"))
        if index in server.batch_failures
        else (custom_id, *server.answer(batch.provider, model, body))
        for index, (custom_id, model, body) in enumerate(batch.items)
    ]


def _openai_file(file_id: str, size: int) -> dict:
    return {
        "id": file_id,
        "object": "file",
        "bytes": size,
        "created_at": 0,
        "filename": "f.jsonl",
        "purpose": "batch",
        "status": "processed",
    }


def _openai_batch(server: FakeAPIServer, batch_id: str) -> dict:
    batch = server.batches[batch_id]
    ended = batch.polls_left <= 0
    answer = {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "created_at": 0,
        "input_file_id": batch.input_file,
        "status": "completed" if ended else "in_progress",
        "request_counts": {"total": len(batch.items), "completed": 0, "failed": 0},
    }
    if ended:
        outcomes = _outcomes(server, batch)
        good = [o for o in outcomes if o[1] == 200]
        bad = [o for o in outcomes if o[1] != 200]
        answer["request_counts"] |= {"completed": len(good), "failed": len(bad)}
        for kind, chosen in (("output_file_id", good), ("error_file_id", bad)):
            if chosen:
                file_id = f"{batch_id}-{kind}"
                server.files[file_id] = "".join(
                    json.dumps({"id": "r", "custom_id": c, "response": {"status_code": status, "body": body}, "error": None})
                    + "\n"
                    for c, status, body in chosen
                )
                answer[kind] = file_id
    return answer


def _anthropic_batch(server: FakeAPIServer, batch_id: str) -> dict:
    batch = server.batches[batch_id]
    ended = batch.polls_left <= 0
    failed = len(server.batch_failures & set(range(len(batch.items)))) if ended else 0
    counts = {
        "processing": 0 if ended else len(batch.items),
        "succeeded": len(batch.items) - failed if ended else 0,
        "errored": failed,
        "canceled": 0,
        "expired": 0,
    }
    return {
        "id": batch_id,
        "type": "message_batch",
        "processing_status": "ended" if ended else "in_progress",
        "request_counts": counts,
        "created_at": "2026-12-04T00:00:00Z",
        "expires_at": "2026-12-05T00:00:00Z",
        "ended_at": "2026-12-04T01:00:00Z" if ended else None,
        "results_url": f"{server.url}/v1/messages/batches/{batch_id}/results" if ended else None,
    }


def _anthropic_results(server: FakeAPIServer, batch_id: str) -> list[dict]:
    lines = []
    for custom_id, status, body in _outcomes(server, server.batches[batch_id]):
        result = {"type": "succeeded", "message": body} if status == 200 else {"type": "errored", "error": body}
        lines.append({"custom_id": custom_id, "result": result})
    return lines


def _gemini_batch(server: FakeAPIServer, name: str) -> dict:
    batch = server.batches[name]
    ended = batch.polls_left <= 0
    metadata = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": f"models/{batch.items[0][1]}",
    }
    metadata["state"] = "BATCH_STATE_SUCCEEDED" if ended else "BATCH_STATE_RUNNING"
    if ended:
        responses = []
        for (_, status, body), item in zip(_outcomes(server, batch), batch.items):
            answer = {"response": body} if status == 200 else {"error": body["error"]}
            responses.append(answer | {"metadata": item[2]["metadata"]})
        metadata["output"] = {"inlinedResponses": {"inlinedResponses": responses}}
    return {"name": name, "metadata": metadata, "done": ended}


def fake_api(reply: str = "Yes") -> contextlib.AbstractContextManager[FakeAPIServer]:
    """A FakeAPIServer on 127.0.0.1, running for the duration of the block."""
    return in_thread(FakeAPIServer(reply))
