"""The base classes every model backend derives from.

A backend receives a `Request` (the prompt, the question's structured parts, the haystack's images in order)
and returns a `Reply` (raw text and usage), both defined in `vhs.protocol` with the errors it raises. It
declares its `Limits` so the runner can report an over-limit haystack as not answerable without sending it.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from vhs.protocol import Limits, Reply, Request, canonical


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
    image_tokens: int | None = None  # tokens one image takes in the LM's context, where the backend fixes it

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

    def dollars(self, request: Request, batch: bool = False) -> tuple[float, float] | None:
        """(input, output at most) dollars a request may cost: (0, 0) for a free backend; None when a paid one's
        price is unknown."""
        return None if self.paid else (0.0, 0.0)

    def read_data_from(self, data: Path | None) -> None:
        """Told by the runner where the questions' data set lives (`vhs eval --data`); a backend that reads
        annotations (the oracle) uses it, the others need not."""

    def generate(self, request: Request) -> Reply:
        """Answer one request."""
        raise NotImplementedError

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Answer several requests; local backends override this to batch."""
        return [self.generate(r) for r in requests]


class Retriever:
    """A backend that ranks a haystack before it answers (MIRAGE, clip-retrieve): `vhs.eval.recall` measures
    how often the needles are among its top k, through the same spec that answers."""

    def relevance(self, request: Request) -> Sequence[float]:
        """One score per image of the request, in haystack order; higher is more relevant."""
        raise NotImplementedError


class BatchedBackend(Backend):
    """A local backend whose natural unit is a batch: it implements `generate_batch`; one request is a batch of one."""

    def generate(self, request: Request) -> Reply:
        """A batch of one."""
        return self.generate_batch([request])[0]

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Answer several requests in one pass."""
        raise NotImplementedError
