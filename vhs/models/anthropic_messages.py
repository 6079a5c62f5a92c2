"""`anthropic`: Claude through the Messages API with base64 image blocks.

Spec: `anthropic:MODEL[@BASE_URL]`, e.g. `anthropic:claude-3-opus-20240229` (the paper's Claude 3
Opus). The key comes from `ANTHROPIC_API_KEY` (base URL from `ANTHROPIC_BASE_URL`). Images come
first, then the question, as the official benchmark code sends them.

Extended thinking: `?thinking_budget=N` (at least 1,024 tokens) sends `thinking={"type": "enabled",
"budget_tokens": N}`, leaves the temperature at the API's default as thinking requires, and sets the
output cap to N plus room for the answer unless `max_tokens` (which must exceed N) is given. The
thinking text is kept as the reply's reasoning.

Batch (`vhs eval --batch`): the same request bodies in a Message Batch of up to `BATCH_REQUESTS`
requests and `BATCH_BYTES` bytes; results are matched by custom id.
"""

from typing import ClassVar

import anthropic
from anthropic.types import Message

from vhs.models.api_common import ApiBackend, BatchProgress, EncodedImage, error_for_status, resolve_key
from vhs.protocol import BackendError, Limits, Reply, Request

# Anthropic "Vision" guide: 100 images per API request (200k-context models), a 32 MB request size
# limit on standard endpoints, and images whose long edge exceeds 1568 px are scaled down first.
MAX_IMAGES_PER_REQUEST = 100
MAX_REQUEST_BYTES = 32 * 2**20
USEFUL_MAX_SIDE = 1568
_PIXELS_PER_TOKEN = 750  # the guide's estimate: tokens = width * height / 750
# "Extended thinking" guide: budget_tokens is at least 1,024 and below max_tokens.
MIN_THINKING_BUDGET = 1024
ANSWER_ROOM = 1024  # ours: output tokens left for the answer after the thinking budget
# "Batch processing" guide: a Message Batch holds up to 100,000 requests or 256 MB.
BATCH_REQUESTS, BATCH_BYTES = 100_000, 256 * 10**6


class AnthropicBackend(ApiBackend):
    """Messages API; images first."""

    name = "anthropic"
    limits = Limits(max_images=MAX_IMAGES_PER_REQUEST, max_request_bytes=MAX_REQUEST_BYTES)
    max_side: ClassVar[int] = USEFUL_MAX_SIDE
    key_env = ("ANTHROPIC_API_KEY",)
    batch_bytes: ClassVar[int | None] = BATCH_BYTES
    batch_requests: ClassVar[int] = BATCH_REQUESTS

    def __init__(self, model_id: str = "claude-3-opus-20240229", thinking_budget: str = "", **options: str) -> None:
        budget = int(thinking_budget) if thinking_budget else 0
        if budget and budget < MIN_THINKING_BUDGET:
            raise BackendError(f"anthropic: thinking_budget must be at least {MIN_THINKING_BUDGET}, got {budget}")
        if budget and options.get("temperature", "auto") not in ("auto", "", "1"):
            raise BackendError("anthropic: extended thinking takes the default temperature only; drop ?temperature")
        super().__init__(model_id or "claude-3-opus-20240229", **({"thinking_budget": budget} if budget else {}), **options)
        if budget and self.params["max_tokens"] <= budget:
            raise BackendError(f"anthropic: max_tokens ({self.params['max_tokens']}) must exceed thinking_budget ({budget})")

    def reasons_by_default(self, model_id: str, params: dict) -> bool:
        """Claude thinks only when given a thinking budget."""
        return bool(params.get("thinking_budget"))

    def default_max_tokens(self, reasoning: bool, params: dict) -> int:
        """The thinking budget plus room for the answer, when thinking."""
        budget = params.get("thinking_budget")
        return budget + ANSWER_ROOM if budget else super().default_max_tokens(reasoning, params)

    def connect(self, api_key: str, base_url: str | None) -> anthropic.Anthropic:
        """A client for the spec's or the environment's endpoint."""
        return anthropic.Anthropic(
            api_key=resolve_key(api_key, self.key_env, "anthropic"), base_url=base_url, max_retries=0, timeout=self.timeout
        )

    def image_tokens(self, image: EncodedImage) -> int:
        """width x height / 750."""
        return -(-image.width * image.height // _PIXELS_PER_TOKEN)

    def body(self, prompt: str, images: list[EncodedImage]) -> dict:
        """The Messages API request: the images in haystack order, then the prompt."""
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": image.b64}} for image in images
        ] + [{"type": "text", "text": prompt}]
        temperature, budget = self.params["temperature"], self.params.get("thinking_budget")
        return {
            "model": self.model_id,
            "max_tokens": self.params["max_tokens"],
            "messages": [{"role": "user", "content": content}],
            **({"thinking": {"type": "enabled", "budget_tokens": budget}} if budget else {}),
            **({"temperature": temperature} if temperature is not None else {}),
        }

    def send(self, prompt: str, images: list[EncodedImage]) -> Reply:
        """One message."""
        body = self.body(prompt, images)
        temperature = {"temperature": body.pop("temperature")} if "temperature" in body else None
        # SDK 2.x dropped the temperature argument; the Messages API takes it for the models the paper used
        return self.read(self.client.messages.create(**body, extra_body=temperature), len(images))

    def read(self, message: Message, images_sent: int = 0) -> Reply:
        """A message as a Reply: its text blocks, usage (prompt-cache reads included), stop reason, thinking."""
        blocks = {kind: [b for b in message.content if getattr(b, "type", "") == kind] for kind in ("text", "thinking")}
        return Reply(
            text="".join(block.text for block in blocks["text"]),
            input_tokens=message.usage.input_tokens + (message.usage.cache_read_input_tokens or 0),
            output_tokens=message.usage.output_tokens,  # thinking included: the API does not report it apart
            images_sent=images_sent,
            stop_reason=message.stop_reason,
            reasoning="\n".join(block.thinking for block in blocks["thinking"]) or None,
            cached_input_tokens=message.usage.cache_read_input_tokens,
        )

    def submit_batch(self, items: list[tuple[str, Request]]) -> str:
        """One Message Batch of the same request bodies."""
        requests = [{"custom_id": custom_id, "params": self.body(r.prompt, self.encoded(r))} for custom_id, r in items]
        return self.calling(lambda: self.client.messages.batches.create(requests=requests)).id

    def poll_batch(self, batch_id: str) -> BatchProgress:
        """The batch's processing status and request counts."""
        batch = self.calling(lambda: self.client.messages.batches.retrieve(batch_id))
        counts = batch.request_counts
        finished = counts.succeeded + counts.errored + counts.canceled + counts.expired
        return BatchProgress(batch.processing_status == "ended", finished, finished + counts.processing, batch.processing_status)

    def batch_results(self, batch_id: str) -> dict[str, Reply | BackendError]:
        """Succeeded requests' messages and errored ones' errors, by custom id (cancelled and expired are absent)."""
        outcome: dict[str, Reply | BackendError] = {}
        for entry in self.calling(lambda: list(self.client.messages.batches.results(batch_id))):
            if entry.result.type == "succeeded":
                outcome[entry.custom_id] = self.priced(self.read(entry.result.message), batch=True)
            elif entry.result.type == "errored":
                error = entry.result.error.error
                outcome[entry.custom_id] = BackendError(f"batch: {error.type}: {error.message}")
        return outcome

    def classify(self, exc: Exception) -> BackendError | None:
        """Map `anthropic.APIStatusError` by its status code."""
        if isinstance(exc, anthropic.APIStatusError):
            return error_for_status(exc.status_code, exc.message, exc.response.headers)
        return None
