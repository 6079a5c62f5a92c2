"""`anthropic`: Claude through the Messages API with base64 image blocks.

Spec: `anthropic:MODEL[@BASE_URL]`, e.g. `anthropic:claude-3-opus-20240229` (the paper's Claude 3
Opus). The key comes from `ANTHROPIC_API_KEY` (base URL from `ANTHROPIC_BASE_URL`). Images come
first, then the question, as the official benchmark code sends them.
"""

from typing import ClassVar

import anthropic

from vhs.models.api_common import ApiBackend, EncodedImage, error_for_status, resolve_key
from vhs.models.base import BackendError, Limits, Reply

# Anthropic "Vision" guide: 100 images per API request (200k-context models), a 32 MB request size
# limit on standard endpoints, and images whose long edge exceeds 1568 px are scaled down first.
MAX_IMAGES_PER_REQUEST = 100
MAX_REQUEST_BYTES = 32 * 2**20
USEFUL_MAX_SIDE = 1568
_PIXELS_PER_TOKEN = 750  # the guide's estimate: tokens = width * height / 750


class AnthropicBackend(ApiBackend):
    """Messages API; images first."""

    name = "anthropic"
    limits = Limits(max_images=MAX_IMAGES_PER_REQUEST, max_request_bytes=MAX_REQUEST_BYTES)
    max_side: ClassVar[int] = USEFUL_MAX_SIDE
    key_env = ("ANTHROPIC_API_KEY",)

    def __init__(self, model_id: str = "claude-3-opus-20240229", **options: str) -> None:
        super().__init__(model_id or "claude-3-opus-20240229", **options)

    def connect(self, api_key: str, base_url: str | None) -> anthropic.Anthropic:
        """A client for the spec's or the environment's endpoint."""
        return anthropic.Anthropic(api_key=resolve_key(api_key, self.key_env, "anthropic"), base_url=base_url, max_retries=0, timeout=self.timeout)

    def image_tokens(self, image: EncodedImage) -> int:
        """width x height / 750."""
        return -(-image.width * image.height // _PIXELS_PER_TOKEN)

    def send(self, prompt: str, images: list[EncodedImage]) -> Reply:
        """One message: the images in haystack order, then the prompt."""
        content = [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": image.b64}} for image in images
        ] + [{"type": "text", "text": prompt}]
        temperature = self.params["temperature"]
        response = self.client.messages.create(
            model=self.model_id,
            max_tokens=self.params["max_tokens"],
            messages=[{"role": "user", "content": content}],
            # SDK 2.x dropped the argument; the Messages API takes it for the models the paper used
            extra_body={"temperature": temperature} if temperature is not None else None,
        )
        text = "".join(block.text for block in response.content if getattr(block, "type", "") == "text")
        return Reply(
            text=text, input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens, images_sent=len(images),
            stop_reason=response.stop_reason,
        )

    def classify(self, exc: Exception) -> BackendError | None:
        """Map `anthropic.APIStatusError` by its status code."""
        if isinstance(exc, anthropic.APIStatusError):
            return error_for_status(exc.status_code, exc.message, exc.response.headers)
        return None
