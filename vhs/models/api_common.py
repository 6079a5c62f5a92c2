"""What the commercial backends share: API keys, compact image encoding, provider errors -> harness errors,
prices, and the provider-neutral face of the batch APIs.

Each provider file (`openai_chat.py`, `anthropic_messages.py`, `gemini.py`) subclasses `ApiBackend`
and implements how to build one request's body, send it with its SDK, read the reply and the SDK's
errors, and (where the provider has one) submit, poll and read a batch.
"""

import base64
import functools
import io
import math
import os
import re
import threading
from dataclasses import dataclass, replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from time import time
from typing import Any, ClassVar

from PIL import Image

from vhs.models.base import Backend
from vhs.models.prices import Price, price_of, reply_dollars
from vhs.paths import data_root, write_atomically
from vhs.protocol import (
    AuthError,
    BackendError,
    ImageRef,
    MissingKeyError,
    OverLimitError,
    Reply,
    Request,
    TransientError,
    open_rgb,
)

JPEG_QUALITY = 90  # visually lossless for photos and flat synthetic scenes; ~3x smaller than PNG for COCO
ANSWER_MAX_TOKENS = 16  # a yes or no, with room for "The answer is"
REASONING_MAX_TOKENS = 8192  # ours: a reasoning model's thinking counts against its output cap; 16 tokens leave it no answer
_OVER_CONTEXT = re.compile(r"context (length|window)|maximum context|too many tokens|prompt is too long|token.{0,20}exceed", re.I)
_OVER_PAYLOAD = re.compile(r"too many images|image.{0,40}(limit|maximum|exceed)|too large|payload|request size", re.I)


@dataclass(frozen=True)
class EncodedImage:
    """A JPEG as it is sent, with its pixel size."""

    data: bytes
    width: int
    height: int

    @functools.cached_property
    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a whole JPEG: it starts and ends with the JPEG markers and its header decodes; else None."""
    if not (data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")):
        return None
    try:
        with Image.open(io.BytesIO(data)) as decoded:
            return decoded.size if decoded.format == "JPEG" else None
    except (OSError, SyntaxError):
        return None


class JpegEncoder:
    """Encodes each distinct image once (resized to fit `max_side`, JPEG at `JPEG_QUALITY`) and reuses it.

    Encoded files are kept under `$VHS_DATA/encoded/` keyed by content hash, so haystacks that share
    images, and later runs, read them back instead of encoding again.
    """

    def __init__(self, max_side: int, root: Path | None = None) -> None:
        self.max_side = max_side
        self.root = (root or data_root() / "encoded") / f"{max_side}px-q{JPEG_QUALITY}"
        self._memory: dict[str, EncodedImage] = {}
        self._lock = threading.Lock()

    def encode(self, image: ImageRef) -> EncodedImage:
        """The JPEG of one image, from memory, disk, or encoded now."""
        with self._lock:
            known = self._memory.get(image.sha256)
        if known:
            return known
        path = self.root / image.sha256[:2] / f"{image.sha256}.jpg"
        data = path.read_bytes() if path.exists() else b""
        size = jpeg_size(data)
        if size is None:  # not encoded yet, or a corrupt, empty or truncated file left by something else
            data = self._jpeg(image.path)
            size = jpeg_size(data)
            write_atomically(path, data)
        encoded = EncodedImage(data, *size)
        with self._lock:
            if len(self._memory) > 4096:  # bounded: a 10,000-image haystack streams through disk
                self._memory.clear()
            self._memory[image.sha256] = encoded
        return encoded

    def _jpeg(self, path: Path) -> bytes:
        picture = open_rgb(path)
        picture.thumbnail((self.max_side, self.max_side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=JPEG_QUALITY)
        return buffer.getvalue()


def resolve_key(explicit: str, env_names: tuple[str, ...], provider: str) -> str:
    """The API key from the model spec or the first set environment variable; MissingKeyError if none."""
    for value in (explicit, *(os.environ.get(name, "") for name in env_names)):
        if value:
            return value
    raise MissingKeyError(f"{provider}: no API key ({' or '.join(env_names)} is not set)")


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None if absent or unreadable."""
    if headers is None:
        return None
    milliseconds, value = headers.get("retry-after-ms"), headers.get("retry-after")
    try:
        if milliseconds:
            seconds = float(milliseconds) / 1000
        elif value:
            try:
                seconds = float(value)
            except ValueError:
                seconds = parsedate_to_datetime(value).timestamp() - time()
        else:
            return None
    except (TypeError, ValueError, OverflowError):  # "soon", a malformed date: as if the provider had said nothing
        return None
    return None if math.isnan(seconds) else max(0.0, seconds)


def error_for_status(status: int, message: str, headers: Any = None) -> BackendError:
    """The harness error for a provider's HTTP status and message (the same rule for every provider)."""
    if status in (401, 403):
        return AuthError(f"{status} {message}")
    if status == 413:
        return OverLimitError("payload", f"413 {message}")
    if status in (408, 409, 429) or status >= 500:
        return TransientError(f"{status} {message}", retry_after_seconds(headers))
    if status in (400, 422) and _OVER_CONTEXT.search(message):
        return OverLimitError("context", f"{status} {message}")
    if status in (400, 422) and _OVER_PAYLOAD.search(message):
        return OverLimitError("payload", f"{status} {message}")
    return BackendError(f"{status} {message}")


def is_transport_error(exc: BaseException) -> bool:
    """A timeout or dropped connection, whatever HTTP library the SDK bundles."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    return isinstance(exc, (TimeoutError, ConnectionError)) or bool(
        names & {"TimeoutException", "TransportError", "APIConnectionError", "APITimeoutError"}
    )


@dataclass(frozen=True)
class BatchProgress:
    """A submitted batch as its provider reports it: whether it ended, how many of its requests are finished
    (answered or failed; 0 while a provider gives no counts), and the provider's word for its state."""

    ended: bool
    finished: int
    total: int
    state: str


def text_tokens(text: str) -> int:
    """A rough token count for English text (4 characters per token)."""
    return math.ceil(len(text) / 4)


class ApiBackend(Backend):
    """A remote, paid model: encodes images, sends one request per haystack, maps SDK errors."""

    paid: ClassVar[bool] = True
    max_side: ClassVar[int] = 2048
    key_env: ClassVar[tuple[str, ...]] = ()
    batch_bytes: ClassVar[int | None] = None  # request bytes one batch of the provider's batch API takes; None: none
    batch_requests: ClassVar[int] = 0  # requests one batch takes

    def __init__(
        self,
        model_id: str,
        api_key: str = "",
        base_url: str = "",
        temperature: str = "auto",
        max_tokens: str = "",
        timeout: str = "120",
        reasoning: str = "auto",
        **params: Any,
    ) -> None:
        """`reasoning` (auto: from the provider's table of model ids; on; off) says whether the model thinks
        before answering. It sets the defaults: a reasoning model gets `REASONING_MAX_TOKENS` of output and
        the provider's temperature, any other `ANSWER_MAX_TOKENS` and temperature 0 (greedy, as the paper).
        `temperature` empty leaves it to the provider.

        The endpoint in the cache key is the one the SDK resolved (the spec's `@URL`, else its environment
        variable, else the provider's), so a local server's answers are never served as the provider's.
        """
        if reasoning not in ("auto", "on", "off"):
            raise BackendError(f"reasoning must be auto, on or off, got {reasoning!r}")
        thinks = self.reasons_by_default(model_id, params) if reasoning == "auto" else reasoning == "on"
        chosen = (None if thinks else 0.0) if temperature == "auto" else float(temperature) if temperature else None
        self.timeout = float(timeout)
        self.client = self.connect(api_key, base_url or None)
        super().__init__(
            model_id,
            base_url=self.endpoint().rstrip("/"),
            temperature=chosen,
            max_tokens=int(max_tokens) if max_tokens else self.default_max_tokens(thinks, params),
            reasoning=thinks,
            **params,
        )
        self.encoder = JpegEncoder(self.max_side)
        self.price: Price | None = price_of(self.name, self.model_id)

    def reasons_by_default(self, model_id: str, params: dict[str, Any]) -> bool:
        """Whether `model_id` is a reasoning model when the spec does not say (the provider's table)."""
        return False

    def default_max_tokens(self, reasoning: bool, params: dict[str, Any]) -> int:
        """The output cap when the spec gives none: room to think for a reasoning model, a word for any other."""
        return REASONING_MAX_TOKENS if reasoning else ANSWER_MAX_TOKENS

    def connect(self, api_key: str, base_url: str | None) -> Any:
        """The provider's SDK client, with its own retries off (the harness's policy is the only one)."""
        raise NotImplementedError

    def endpoint(self) -> str:
        """The base URL the client sends to."""
        return str(self.client.base_url)

    def request_bytes(self, request: Request) -> int:
        """Bytes on the wire: base64 images plus the prompt."""
        return sum(len(self.encoder.encode(image).b64) for image in request.images) + len(request.prompt.encode())

    def prompt_tokens(self, request: Request) -> int:
        """Estimated input tokens: the provider's image formula plus the text."""
        return text_tokens(request.prompt) + sum(self.image_tokens(self.encoder.encode(image)) for image in request.images)

    def image_tokens(self, image: EncodedImage) -> int:
        """Tokens the provider bills for one image."""
        raise NotImplementedError

    def dollars(self, request: Request, batch: bool = False) -> tuple[float, float] | None:
        """(input, output at most) dollars of a request at list price: its estimated input tokens, and every token
        of its output cap; None: price unknown."""
        if self.price is None:
            return None
        return self.price.bounds(self.prompt_tokens(request), self.params["max_tokens"], batch)

    def priced(self, reply: Reply, batch: bool = False) -> Reply:
        """The reply with its dollars: the provider's own figure if it gave one, else its usage at list price."""
        if reply.cost_usd is not None or self.price is None:
            return reply
        return replace(reply, cost_usd=reply_dollars(self.price, reply, batch))

    def generate(self, request: Request) -> Reply:
        """Send the haystack and map whatever the SDK raises to the harness's errors."""
        images = self.encoded(request)
        return self.priced(self.calling(lambda: self.send(request.prompt, images)))

    def calling(self, call: Any) -> Any:
        """`call()`, with whatever the SDK raises mapped to the harness's errors."""
        try:
            return call()
        except BackendError:
            raise
        except Exception as exc:  # the SDKs' own exception types, read by status code
            mapped = self.classify(exc)
            if mapped is None and is_transport_error(exc):
                mapped = TransientError(f"{type(exc).__name__}: {exc}", unreachable=True)
            if mapped is None:
                raise
            raise mapped from exc

    def send(self, prompt: str, images: list[EncodedImage]) -> Reply:
        """One SDK call with the prompt and the images in haystack order."""
        raise NotImplementedError

    def submit_batch(self, items: list[tuple[str, Request]]) -> str:
        """Submit (custom id, request) pairs through the provider's batch API (one with `batch_bytes`); its id."""
        raise NotImplementedError

    def poll_batch(self, batch_id: str) -> BatchProgress:
        """Where a submitted batch stands."""
        raise NotImplementedError

    def batch_results(self, batch_id: str) -> dict[str, Reply | BackendError]:
        """An ended batch's outcome per custom id: the reply (priced at the batch rate) or why it failed;
        a request the provider never finished (expired, cancelled) is absent."""
        raise NotImplementedError

    def encoded(self, request: Request) -> list[EncodedImage]:
        """A request's images as they are sent, directly or in a batch."""
        return [self.encoder.encode(image) for image in request.images]

    def classify(self, exc: Exception) -> BackendError | None:
        """The harness error for an SDK exception that carries an HTTP status, else None."""
        raise NotImplementedError
