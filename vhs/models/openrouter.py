"""`openrouter`: any model OpenRouter routes (Grok 4, and the others), through its OpenAI-compatible API.

Spec: `openrouter:x-ai/grok-4[?reasoning_effort=high|reasoning_max_tokens=N]`. The key comes from
`OPENROUTER_API_KEY`; the endpoint is OpenRouter's unless the spec gives one (`@http://…`). OpenRouter
takes `max_tokens` for every model and its own `reasoning` object (`{"effort": …}` or
`{"max_tokens": …}`), and returns the reasoning text on the message, which is kept. Each request asks for
OpenRouter's usage accounting, whose `cost` (dollars, as billed) becomes the reply's cost. OpenRouter has no
batch API.
"""

from typing import ClassVar

import openai

from vhs.models.api_common import resolve_key
from vhs.models.openai_chat import OpenAIBackend
from vhs.protocol import BackendError

BASE_URL = "https://openrouter.ai/api/v1"
# Models OpenRouter lists as always reasoning, by id prefix (its "Reasoning tokens" guide).
REASONING_MODEL_PREFIXES = ("x-ai/grok-4", "openai/gpt-5", "openai/o", "deepseek/deepseek-r1", "google/gemini-2.5")


class OpenRouterBackend(OpenAIBackend):
    """OpenRouter's chat completions: the OpenAI client, OpenRouter's key, endpoint and reasoning object."""

    name = "openrouter"
    key_env = ("OPENROUTER_API_KEY",)
    batch_bytes: ClassVar[int | None] = None

    def __init__(self, model_id: str = "x-ai/grok-4", reasoning_max_tokens: str = "", **options: str) -> None:
        if reasoning_max_tokens and "reasoning_effort" in options:
            raise BackendError("openrouter: give reasoning_effort or reasoning_max_tokens, not both")
        budget = {"reasoning_max_tokens": int(reasoning_max_tokens)} if reasoning_max_tokens else {}
        super().__init__(model_id or "x-ai/grok-4", **budget, **options)

    def connect(self, api_key: str, base_url: str | None) -> openai.OpenAI:
        """A client for OpenRouter (or the spec's endpoint), with OpenRouter's key."""
        return openai.OpenAI(
            api_key=resolve_key(api_key, self.key_env, "openrouter"),
            base_url=base_url or BASE_URL,
            max_retries=0,
            timeout=self.timeout,
        )

    def reasons_by_default(self, model_id: str, params: dict) -> bool:
        """The always-reasoning models OpenRouter lists, by id; any model given a reasoning setting."""
        return model_id.startswith(REASONING_MODEL_PREFIXES) or bool({"reasoning_effort", "reasoning_max_tokens"} & set(params))

    def generation(self) -> dict:
        """`max_tokens`, temperature, and in the request body OpenRouter's `reasoning` object and usage accounting."""
        arguments: dict = {"max_tokens": self.params["max_tokens"]}
        if self.params["temperature"] is not None:
            arguments["temperature"] = self.params["temperature"]
        extra: dict = {"usage": {"include": True}}
        if "reasoning_effort" in self.params:
            extra["reasoning"] = {"effort": self.params["reasoning_effort"]}
        elif "reasoning_max_tokens" in self.params:
            extra["reasoning"] = {"max_tokens": self.params["reasoning_max_tokens"]}
        return arguments | {"extra_body": extra}
