"""What the runner and a backend exchange: the images, the request, the reply, the declared limits, and the
errors a backend raises, whatever the provider. The `Backend` classes that implement it are in
`vhs.models.base`; every layer below the backends (MIRAGE, the synth models, the cache) reads these values only.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """What a backend answers: the full prompt and the images in order, and what a question record says a
    model may use (never its answer or which images are needles).

    `question` is the question alone, without the prompt's instruction; `kind` (a name in
    `vhs.data.kinds.KINDS`), `anchor` and `target` are its structured parts, for a retrieval model or an
    oracle; all four are empty for a free prompt. `qid` names the question (a seed for a random guesser),
    `dataset` the data set whose annotations describe the images.
    """

    prompt: str
    images: tuple[ImageRef, ...]
    question: str = ""
    kind: str = ""
    anchor: str = ""
    target: str = ""
    qid: str = ""
    dataset: str = ""


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
    cached_input_tokens: int | None = None  # input tokens read from the provider's prompt cache (billed lower)
    cost_usd: float | None = None  # dollars the call cost: the provider's own figure, else its usage at list price

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
