"""`openai`: GPT-4o and any OpenAI-compatible server (vLLM, SGLang, llama.cpp, LM Studio).

Spec: `openai:MODEL[@BASE_URL][?order=images-first&detail=high&...]`, e.g. `openai:gpt-4o` or
`openai:Qwen/Qwen2-VL-7B-Instruct@http://127.0.0.1:8000/v1`. The key comes from `OPENAI_API_KEY`
(and the base URL from `OPENAI_BASE_URL`) unless the spec gives them; a server at a custom base
URL needs no key. Images go as base64 JPEG data URLs; the paper sends GPT-4o the text first.

Reasoning models (GPT-5, the o-series; `REASONING_MODEL_PREFIXES`, or `?reasoning=on|off`) reject
`max_tokens` and any temperature but the default: they get `max_completion_tokens` and no
temperature, and `?reasoning_effort=minimal|low|medium|high` is passed on. The reasoning tokens they
report are kept; the chat API returns no reasoning text.

Batch (`vhs eval --batch`): the same request bodies as lines of a JSONL file uploaded for the Batch
API, one batch per `BATCH_REQUESTS` requests or `BATCH_BYTES` bytes; the output and error files are
read back by custom id.
"""

import io
import json
import os
from typing import ClassVar

import openai
from openai.types.chat import ChatCompletion

from vhs.models.api_common import ApiBackend, BatchProgress, EncodedImage, error_for_status, resolve_key
from vhs.protocol import BackendError, Limits, MissingKeyError, Reply, Request

# OpenAI "Images and vision" guide: up to 500 images and 50 MB of image bytes per request, 20 MB per image.
MAX_IMAGES_PER_REQUEST = 500
MAX_IMAGE_BYTES_PER_REQUEST = 50 * 2**20
# High detail scales an image to fit 2048x2048, then its short side to 768: larger pixels are never seen.
USEFUL_MAX_SIDE = 2048
_TILE, _TILE_TOKENS, _BASE_TOKENS = 512, 170, 85
# OpenAI "Reasoning models" guide: these families take `max_completion_tokens` and the default temperature only.
REASONING_MODEL_PREFIXES = ("gpt-5", "o1", "o3", "o4")
# OpenAI "Batch API" guide: an input file holds up to 50,000 requests and 200 MB.
BATCH_REQUESTS, BATCH_BYTES = 50_000, 200 * 10**6
_BATCH_ENDED = ("completed", "failed", "expired", "cancelled")


class OpenAIBackend(ApiBackend):
    """Chat completions with images as data URLs."""

    name = "openai"
    limits = Limits(max_images=MAX_IMAGES_PER_REQUEST, max_request_bytes=MAX_IMAGE_BYTES_PER_REQUEST)
    max_side: ClassVar[int] = USEFUL_MAX_SIDE
    key_env = ("OPENAI_API_KEY",)
    batch_bytes: ClassVar[int | None] = BATCH_BYTES
    batch_requests: ClassVar[int] = BATCH_REQUESTS

    def __init__(
        self,
        model_id: str = "gpt-4o",
        order: str = "text-first",
        detail: str = "auto",
        reasoning_effort: str = "",
        **options: str,
    ) -> None:
        if order not in ("text-first", "images-first"):
            raise BackendError(f"openai: order must be text-first or images-first, got {order!r}")
        effort = {"reasoning_effort": reasoning_effort} if reasoning_effort else {}
        super().__init__(model_id or "gpt-4o", order=order, detail=detail, **effort, **options)

    def reasons_by_default(self, model_id: str, params: dict) -> bool:
        """GPT-5 and the o-series, by model id; any model asked for a reasoning effort."""
        return model_id.startswith(REASONING_MODEL_PREFIXES) or "reasoning_effort" in params

    def generation(self) -> dict:
        """The request's generation arguments: the output cap under the name the model takes, temperature, effort."""
        cap = "max_completion_tokens" if self.params["reasoning"] else "max_tokens"
        arguments: dict = {cap: self.params["max_tokens"]}
        if self.params["temperature"] is not None:
            arguments["temperature"] = self.params["temperature"]
        if "reasoning_effort" in self.params:
            arguments["reasoning_effort"] = self.params["reasoning_effort"]
        return arguments

    def connect(self, api_key: str, base_url: str | None) -> openai.OpenAI:
        """A client for the spec's or the environment's endpoint; a custom endpoint needs no key."""
        try:
            key = resolve_key(api_key, self.key_env, "openai")
        except MissingKeyError:
            if not (base_url or os.environ.get("OPENAI_BASE_URL")):
                raise
            key = "not-needed"  # local OpenAI-compatible servers accept any key
        return openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=self.timeout)

    def image_tokens(self, image: EncodedImage) -> int:
        """85 + 170 per 512-px tile after scaling the short side to at most 768 (high detail)."""
        scale = min(1.0, 768 / min(image.width, image.height))
        width, height = image.width * scale, image.height * scale
        return _BASE_TOKENS + _TILE_TOKENS * (-(-int(width) // _TILE)) * (-(-int(height) // _TILE))

    def body(self, prompt: str, images: list[EncodedImage]) -> dict:
        """The chat completion request: the prompt and the images in haystack order, text first by default."""
        text = [{"type": "text", "text": prompt}]
        pictures = [
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image.b64}", "detail": self.params["detail"]}}
            for image in images
        ]
        content = text + pictures if self.params["order"] == "text-first" else pictures + text
        return {"model": self.model_id, "messages": [{"role": "user", "content": content}], **self.generation()}

    def send(self, prompt: str, images: list[EncodedImage]) -> Reply:
        """One chat completion."""
        return self.read(self.client.chat.completions.create(**self.body(prompt, images)), len(images))

    def read(self, response: ChatCompletion, images_sent: int = 0) -> Reply:
        """A chat completion as a Reply: text, usage (prompt-cache hits included), stop reason, reasoning."""
        if not response.choices:
            raise BackendError(f"{self.name}: the response holds no choices")
        choice, usage = response.choices[0], response.usage
        refused = getattr(choice.message, "refusal", None)
        details = getattr(usage, "completion_tokens_details", None)
        prompt_details = getattr(usage, "prompt_tokens_details", None)
        reported = (usage.model_extra or {}).get("cost") if usage else None  # OpenRouter's own figure, in dollars
        return Reply(
            text=choice.message.content or "",
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            images_sent=images_sent,
            stop_reason="refusal" if refused else choice.finish_reason,
            reasoning=(choice.message.model_extra or {}).get("reasoning"),  # OpenRouter and some local servers return it
            reasoning_tokens=getattr(details, "reasoning_tokens", None),
            cached_input_tokens=getattr(prompt_details, "cached_tokens", None),
            cost_usd=float(reported) if isinstance(reported, (int, float)) else None,
        )

    def submit_batch(self, items: list[tuple[str, Request]]) -> str:
        """Upload the requests as a JSONL file and create a 24-hour batch on chat completions."""
        lines = "".join(
            json.dumps(
                {
                    "custom_id": custom_id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": self.body(r.prompt, self.encoded(r)),
                }
            )
            + "\n"
            for custom_id, r in items
        )
        upload = io.BytesIO(lines.encode())
        uploaded = self.calling(lambda: self.client.files.create(file=("vhs-batch.jsonl", upload), purpose="batch"))
        batch = self.calling(
            lambda: self.client.batches.create(
                input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
        )
        return batch.id

    def poll_batch(self, batch_id: str) -> BatchProgress:
        """The batch's status and request counts."""
        batch = self.calling(lambda: self.client.batches.retrieve(batch_id))
        counts = batch.request_counts
        finished = counts.completed + counts.failed if counts else 0
        return BatchProgress(batch.status in _BATCH_ENDED, finished, counts.total if counts else 0, batch.status)

    def batch_results(self, batch_id: str) -> dict[str, Reply | BackendError]:
        """The output file's replies and the error file's failures, by custom id."""
        batch = self.calling(lambda: self.client.batches.retrieve(batch_id))
        outcome: dict[str, Reply | BackendError] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            text = self.calling(lambda file_id=file_id: self.client.files.content(file_id).text)
            for line in filter(None, map(str.strip, text.splitlines())):
                record = json.loads(line)
                outcome[record["custom_id"]] = self._batch_line(record)
        return outcome

    def _batch_line(self, record: dict) -> Reply | BackendError:
        response, error = record.get("response") or {}, record.get("error")
        status = response.get("status_code")
        if error or status != 200:
            message = (error or (response.get("body") or {}).get("error") or {}).get("message", "no message")
            return error_for_status(status or 500, f"batch: {message}")
        try:
            reply = self.read(ChatCompletion.model_validate(response["body"]))
        except BackendError as exc:
            return exc
        return self.priced(reply, batch=True)

    def classify(self, exc: Exception) -> BackendError | None:
        """Map `openai.APIStatusError` by its status code."""
        if isinstance(exc, openai.APIStatusError):
            return error_for_status(exc.status_code, exc.message, exc.response.headers)
        return None
