"""`gemini`: Gemini through `google-genai`, the maintained successor of `google-generativeai`.

Spec: `gemini:MODEL[@BASE_URL]`, e.g. `gemini:gemini-1.5-pro` (the paper's model). The key comes
from `GEMINI_API_KEY` or `GOOGLE_API_KEY`. Images go as inline JPEG parts, first, then the
question, as the official benchmark code sends them.

Gemini 2.5 and later think before answering (`REASONING_MODEL_PREFIXES`, or `?reasoning=on|off`),
and their thinking counts against the output cap, so they get `REASONING_MAX_TOKENS`.
`?thinking_budget=N` sets the budget (`ThinkingConfig`; 0 turns thinking off where the model allows),
`?include_thoughts=1` asks for the thought summaries, kept as the reply's reasoning.

Batch (`vhs eval --batch`): the same requests inlined in a batch job of at most `BATCH_BYTES`, each
carrying its custom id as metadata, which the API returns with its response.
"""

from typing import ClassVar

from google import genai
from google.genai import errors, types

from vhs.models.api_common import ApiBackend, BatchProgress, EncodedImage, error_for_status, resolve_key
from vhs.protocol import BackendError, Limits, Reply, Request

# Gemini API "Image understanding" guide: inline data only while the whole request stays under
# 20 MB, and at most 3,600 images per request.
MAX_IMAGES_PER_REQUEST = 3600
MAX_REQUEST_BYTES = 20 * 2**20
# Images are scaled to fit 3072x3072 and cut into 768x768 tiles of 258 tokens (one tile if both
# sides are at most 384 px).
USEFUL_MAX_SIDE = 3072
_TILE, _TILE_TOKENS, _SMALL = 768, 258, 384
# Gemini "Thinking" guide: the 2.5 models and later think by default.
REASONING_MODEL_PREFIXES = ("gemini-2.5", "gemini-3")
# "Batch mode" guide: inlined requests for batches whose whole request stays under 20 MB (10,000 requests: ours).
BATCH_REQUESTS, BATCH_BYTES = 10_000, 20 * 2**20
_JOB_ENDED = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED")


class GeminiBackend(ApiBackend):
    """generate_content with inline image parts; images first."""

    name = "gemini"
    limits = Limits(max_images=MAX_IMAGES_PER_REQUEST, max_request_bytes=MAX_REQUEST_BYTES)
    max_side: ClassVar[int] = USEFUL_MAX_SIDE
    key_env = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    batch_bytes: ClassVar[int | None] = BATCH_BYTES
    batch_requests: ClassVar[int] = BATCH_REQUESTS

    def __init__(
        self, model_id: str = "gemini-1.5-pro", thinking_budget: str = "", include_thoughts: str = "", **options: str
    ) -> None:
        thinking = {"thinking_budget": int(thinking_budget)} if thinking_budget else {}
        if include_thoughts:
            thinking["include_thoughts"] = include_thoughts.lower() in ("1", "true", "yes")
        super().__init__(model_id or "gemini-1.5-pro", **thinking, **options)

    def reasons_by_default(self, model_id: str, params: dict) -> bool:
        """Gemini 2.5 and later, by model id, unless given no thinking budget; any model given one."""
        if "thinking_budget" in params:
            return params["thinking_budget"] != 0
        return model_id.startswith(REASONING_MODEL_PREFIXES)

    def connect(self, api_key: str, base_url: str | None) -> genai.Client:
        """A client for the spec's endpoint, else `GOOGLE_GEMINI_BASE_URL`'s, else Google's."""
        http = types.HttpOptions(
            base_url=base_url, timeout=int(self.timeout * 1000), retry_options=types.HttpRetryOptions(attempts=1)
        )
        return genai.Client(api_key=resolve_key(api_key, self.key_env, "gemini"), http_options=http)

    def endpoint(self) -> str:
        """The base URL the client resolved (the SDK keeps it on its private API client only)."""
        return str(self.client._api_client._http_options.base_url)

    def image_tokens(self, image: EncodedImage) -> int:
        """258 per 768-px tile; one tile for images up to 384 px on both sides."""
        if image.width <= _SMALL and image.height <= _SMALL:
            return _TILE_TOKENS
        return _TILE_TOKENS * (-(-image.width // _TILE)) * (-(-image.height // _TILE))

    def contents(self, prompt: str, images: list[EncodedImage]) -> list:
        """The request's parts: the images in haystack order, then the prompt."""
        return [*(types.Part.from_bytes(data=image.data, mime_type="image/jpeg") for image in images), prompt]

    def config(self) -> types.GenerateContentConfig:
        """Temperature, output cap and thinking settings."""
        thinking = {k: self.params[k] for k in ("thinking_budget", "include_thoughts") if k in self.params}
        return types.GenerateContentConfig(
            temperature=self.params["temperature"],
            max_output_tokens=self.params["max_tokens"],
            thinking_config=types.ThinkingConfig(**thinking) if thinking else None,
        )

    def send(self, prompt: str, images: list[EncodedImage]) -> Reply:
        """One generate_content call."""
        response = self.client.models.generate_content(
            model=self.model_id, contents=self.contents(prompt, images), config=self.config()
        )
        return self.read(response, len(images))

    def read(self, response: types.GenerateContentResponse, images_sent: int = 0) -> Reply:
        """A response as a Reply: its non-thought text, usage (thoughts billed as output), stop reason, thoughts."""
        usage = response.usage_metadata
        candidate = response.candidates[0] if response.candidates else None
        if candidate is None:
            blocked = response.prompt_feedback.block_reason if response.prompt_feedback else None
            stop_reason = f"blocked: {getattr(blocked, 'value', blocked)}" if blocked else None
        else:
            stop_reason = getattr(candidate.finish_reason, "value", candidate.finish_reason)
        said = [p for p in (candidate.content.parts or []) if p.text] if candidate and candidate.content else []
        thoughts = usage.thoughts_token_count if usage else None
        answer_tokens = usage.candidates_token_count if usage else None
        return Reply(
            text="".join(p.text for p in said if not p.thought),
            input_tokens=usage.prompt_token_count if usage else None,
            # as OpenAI and Anthropic count it: the answer and the thinking, both billed as output
            output_tokens=None if answer_tokens is None and thoughts is None else (answer_tokens or 0) + (thoughts or 0),
            images_sent=images_sent,
            stop_reason=stop_reason.lower() if isinstance(stop_reason, str) else None,
            reasoning="".join(p.text for p in said if p.thought) or None,
            reasoning_tokens=thoughts,
            cached_input_tokens=usage.cached_content_token_count if usage else None,
        )

    def submit_batch(self, items: list[tuple[str, Request]]) -> str:
        """One batch job of inlined requests, each carrying its custom id as metadata."""
        requests = [
            types.InlinedRequest(
                contents=self.contents(r.prompt, self.encoded(r)), config=self.config(), metadata={"custom_id": custom_id}
            )
            for custom_id, r in items
        ]
        job = self.calling(lambda: self.client.batches.create(model=self.model_id, src=requests))
        return str(job.name)

    def poll_batch(self, batch_id: str) -> BatchProgress:
        """The job's state (the Gemini API gives no per-request counts while it runs)."""
        job = self.calling(lambda: self.client.batches.get(name=batch_id))
        state = str(getattr(job.state, "value", job.state))
        ended = state in _JOB_ENDED
        total = len(job.dest.inlined_responses or []) if ended and job.dest else 0
        return BatchProgress(ended, total, total, state.removeprefix("JOB_STATE_").lower())

    def batch_results(self, batch_id: str) -> dict[str, Reply | BackendError]:
        """The inlined responses and errors, by the custom id each carries back."""
        job = self.calling(lambda: self.client.batches.get(name=batch_id))
        outcome: dict[str, Reply | BackendError] = {}
        for answer in (job.dest.inlined_responses or []) if job.dest else []:
            custom_id = (answer.metadata or {}).get("custom_id")
            if custom_id is None:
                continue
            if answer.error is not None or answer.response is None:
                message = answer.error.message if answer.error else "no response"
                outcome[custom_id] = BackendError(f"batch: {message}")
            else:
                outcome[custom_id] = self.priced(self.read(answer.response), batch=True)
        return outcome

    def classify(self, exc: Exception) -> BackendError | None:
        """Map `google.genai.errors.APIError` by its status code."""
        if isinstance(exc, errors.APIError):
            headers = exc.response.headers if getattr(exc, "response", None) is not None else None
            return error_for_status(exc.code, exc.message or str(exc), headers)
        return None
