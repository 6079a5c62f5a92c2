"""`openai`: GPT-4o and any OpenAI-compatible server (vLLM, SGLang, llama.cpp, LM Studio).

Spec: `openai:MODEL[@BASE_URL][?order=images-first&detail=high&...]`, e.g. `openai:gpt-4o` or
`openai:Qwen/Qwen2-VL-7B-Instruct@http://127.0.0.1:8000/v1`. The key comes from `OPENAI_API_KEY`
(and the base URL from `OPENAI_BASE_URL`) unless the spec gives them; a server at a custom base
URL needs no key. Images go as base64 JPEG data URLs; the paper sends GPT-4o the text first.

Reasoning models (GPT-5, the o-series; `REASONING_MODEL_PREFIXES`, or `?reasoning=on|off`) reject
`max_tokens` and any temperature but the default: they get `max_completion_tokens` and no
temperature, and `?reasoning_effort=minimal|low|medium|high` is passed on. The reasoning tokens they
report are kept; the chat API returns no reasoning text.
"""

import os
from typing import ClassVar

import openai

from vhs.models.api_common import ApiBackend, EncodedImage, error_for_status, resolve_key
from vhs.protocol import BackendError, Limits, MissingKeyError, Reply

# OpenAI "Images and vision" guide: up to 500 images and 50 MB of image bytes per request, 20 MB per image.
MAX_IMAGES_PER_REQUEST = 500
MAX_IMAGE_BYTES_PER_REQUEST = 50 * 2**20
# High detail scales an image to fit 2048x2048, then its short side to 768: larger pixels are never seen.
USEFUL_MAX_SIDE = 2048
_TILE, _TILE_TOKENS, _BASE_TOKENS = 512, 170, 85
# OpenAI "Reasoning models" guide: these families take `max_completion_tokens` and the default temperature only.
REASONING_MODEL_PREFIXES = ("gpt-5", "o1", "o3", "o4")


class OpenAIBackend(ApiBackend):
    """Chat completions with images as data URLs."""

    name = "openai"
    limits = Limits(max_images=MAX_IMAGES_PER_REQUEST, max_request_bytes=MAX_IMAGE_BYTES_PER_REQUEST)
    max_side: ClassVar[int] = USEFUL_MAX_SIDE
    key_env = ("OPENAI_API_KEY",)

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

    def send(self, prompt: str, images: list[EncodedImage]) -> Reply:
        """One chat completion: the prompt and the images in haystack order, text first by default."""
        text = [{"type": "text", "text": prompt}]
        pictures = [
            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image.b64}", "detail": self.params["detail"]}}
            for image in images
        ]
        content = text + pictures if self.params["order"] == "text-first" else pictures + text
        response = self.client.chat.completions.create(
            model=self.model_id, messages=[{"role": "user", "content": content}], **self.generation()
        )
        if not response.choices:
            raise BackendError(f"{self.name}: the response holds no choices")
        choice, usage = response.choices[0], response.usage
        refused = getattr(choice.message, "refusal", None)
        details = getattr(usage, "completion_tokens_details", None)
        return Reply(
            text=choice.message.content or "",
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            images_sent=len(images),
            stop_reason="refusal" if refused else choice.finish_reason,
            reasoning=(choice.message.model_extra or {}).get("reasoning"),  # OpenRouter and some local servers return it
            reasoning_tokens=getattr(details, "reasoning_tokens", None),
        )

    def classify(self, exc: Exception) -> BackendError | None:
        """Map `openai.APIStatusError` by its status code."""
        if isinstance(exc, openai.APIStatusError):
            return error_for_status(exc.status_code, exc.message, exc.response.headers)
        return None
