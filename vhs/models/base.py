"""The protocol every model backend implements, and the errors a backend raises.

A backend receives a `Request` (the prompt, the question record, the haystack's images in order)
and returns a `Reply` (raw text and usage). It declares its `Limits` so the runner can report an
over-limit haystack as not answerable without sending it, and it raises the errors below so the
runner can retry, stop, or mark the question, whatever the provider.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from PIL import Image


@dataclass(frozen=True)
class ImageRef:
    """One haystack image: its id, file, and content hash (what the cache key uses)."""

    image_id: int
    path: Path
    sha256: str
    num_bytes: int


@dataclass(frozen=True)
class Request:
    """What a backend answers: the full prompt, the question record, and the images in order."""

    prompt: str
    question: dict
    images: tuple[ImageRef, ...]


@dataclass(frozen=True)
class Reply:
    """A backend's raw answer and usage."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    images_sent: int = 0
    kept: tuple[int, ...] | None = None  # haystack positions a retrieving backend kept (None: it keeps all)
    stop_reason: str | None = None  # why generation ended, as the provider says: "stop", "length", "refusal" ...
    reasoning: str | None = None  # the thinking text or summary a reasoning model returned, when it does
    reasoning_tokens: int | None = None  # output tokens spent reasoning, when the provider reports them

    @property
    def is_final(self) -> bool:
        """Whether the reply holds an answer worth replaying: an empty one (a refusal, a cap hit first) is asked again."""
        return bool(self.text.strip())

    @property
    def cut_by_cap(self) -> bool:
        """Whether generation stopped at the output cap (OpenAI and HF say "length", Anthropic and Gemini "max_tokens")."""
        return self.stop_reason in ("length", "max_tokens")


@dataclass(frozen=True)
class Limits:
    """A backend's documented limits; None means unlimited."""

    max_images: int | None = None
    max_request_bytes: int | None = None
    context_tokens: int | None = None


def canonical(value: Any, name: str = "parameter") -> Any:
    """A parameter value as the cache key hashes it: JSON scalars, lists and string-keyed dicts, nothing else.

    Paths become POSIX strings and tuples lists; a non-finite float or any other object is a TypeError,
    so no `str()` of an arbitrary object (which may hold an address or a secret) ever reaches a key.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{name} must be a finite number, got {value!r}")
        return value
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, (list, tuple)):
        return [canonical(v, name) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v, f"{name}.{k}") for k, v in sorted(value.items())}
    raise TypeError(f"{name} has a value of type {type(value).__name__}; give a string, number, bool, list or dict")


class Backend:
    """Base class of every backend. Subclasses set `name`, and implement `generate`.

    Every keyword argument of a backend's `__init__` is an option its spec may set
    (`NAME:MODEL?option=value`); the registry rejects any other. `model_id` and `params` (every setting
    that can change a reply: output caps, temperature, order, base URL, a weights digest) go into the
    cache key with the prompt and the image hashes. Options named in `secret_params` (API keys) never
    reach a key, a label or a file; keep them out of `params`, or list them there. Local backends that
    batch set `batch_size`.
    """

    name: ClassVar[str] = "backend"
    paid: ClassVar[bool] = False  # a paid API: the runner states what it will send before sending
    secret_params: ClassVar[frozenset[str]] = frozenset({"api_key"})
    limits: Limits = Limits()
    batch_size: int = 1

    def __init__(self, model_id: str = "", **params: Any) -> None:
        self.model_id = model_id
        self.params: dict[str, Any] = {k: canonical(v, k) for k, v in params.items()}

    def identity(self) -> dict[str, Any]:
        """Everything about the backend that determines its answer; the options in `secret_params` are left out."""
        public = {k: v for k, v in self.params.items() if k not in self.secret_params}
        return {"backend": self.name, "model": self.model_id, "params": public}

    def label(self) -> str:
        """The name results are reported under, e.g. `random:seed=0` or `openai:gpt-4o`."""
        return f"{self.name}:{self.model_id}" if self.model_id else self.name

    def request_bytes(self, request: Request) -> int:
        """Bytes the request would send; the image files' sizes unless the backend re-encodes them."""
        return sum(image.num_bytes for image in request.images)

    def prompt_tokens(self, request: Request) -> int | None:
        """Tokens the request would take in the model's context, if the backend can tell."""
        return None

    def generate(self, request: Request) -> Reply:
        """Answer one request."""
        raise NotImplementedError

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Answer several requests; local backends override this to batch."""
        return [self.generate(r) for r in requests]


class BatchedBackend(Backend):
    """A local backend whose natural unit is a batch: it implements `generate_batch`; one request is a batch of one."""

    def generate(self, request: Request) -> Reply:
        """A batch of one."""
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Answer several requests in one pass."""
        raise NotImplementedError


class BackendError(Exception):
    """Base of the errors a backend raises."""


@dataclass
class TransientError(BackendError):
    """Worth retrying: 429, 5xx, a timeout, a dropped connection. `retry_after` in seconds if the provider said;
    `unreachable` when no answer came at all (refused, dropped or timed-out connection), which the runner's
    circuit breaker counts."""

    message: str
    retry_after: float | None = None
    unreachable: bool = False

    def __str__(self) -> str:
        return self.message


class OverLimitError(BackendError):
    """The provider refused the request as too large: `kind` is "payload" or "context"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class AuthError(BackendError):
    """401/403: the key is wrong or lacks access. Stops the run."""


class MissingKeyError(BackendError):
    """No API key is configured: the model is reported "not run"."""


def open_rgb(path: Path) -> Image.Image:
    """An image file decoded as RGB; a corrupt file is a BackendError naming it."""
    try:
        with Image.open(path) as opened:
            return opened.convert("RGB")
    except (OSError, SyntaxError) as exc:
        raise BackendError(f"corrupt image {path}: {exc}") from None
