"""What a paid model's run would send and cost, worked out without sending anything.

Chapter 2 lists every commercial model with these figures whether or not its key is set: how many images one
request can carry (the provider's declared limits), and the requests, tokens and dollars of the chapter's own
run (on this profile's images, as `vhs eval` would encode them) and of a paper-sized run (1,000 questions per
size on COCO-sized images). Input dollars follow the provider's image-token formula and the list price; output
dollars are an upper bound, every reply at its output cap, since a reasoning model's thinking is not known
before it is paid for.
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from vhs.cache import ResponseCache
from vhs.eval.runner import HaystackImages, over_limit
from vhs.models.api_common import ApiBackend, EncodedImage, text_tokens
from vhs.models.registry import backend_class, load_backend, parse_spec
from vhs.protocol import MissingKeyError

PAPER_PER_SIZE = 1000  # questions per size in the paper's runs
COCO_IMAGE = (640, 480)  # COCO 2017's most common image size
COCO_MEAN_JPEG_BYTES = 163_117  # the val2017 archive's 815,585,330 bytes over its 5,000 images
_PLACEHOLDER_KEY = "estimate-only"  # builds the SDK client, which sends nothing until asked


@dataclass(frozen=True)
class Estimate:
    """A run's requests (those within the limits; `not_answerable` are not sent), images, the mean bytes one image
    takes in a request, estimated input tokens, and dollars at list price: input, and output at most (None: price
    unknown)."""

    requests: int
    not_answerable: int
    images: int
    image_bytes: float
    input_tokens: int
    input_usd: float | None
    output_usd: float | None


def offline_backend(spec: str) -> ApiBackend | None:
    """The paid backend a spec names, built even when its key is not set (for its limits, formulas and prices);
    None when it names a local model, whose cost is the machine's time (chapter 8), not dollars."""
    if not issubclass(backend_class(parse_spec(spec)[0]), ApiBackend):
        return None
    try:
        backend = load_backend(spec)
    except MissingKeyError:
        backend = load_backend(f"{spec}{'&' if '?' in spec else '?'}api_key={_PLACEHOLDER_KEY}")
    return cast(ApiBackend, backend)  # its class was checked above


def images_per_request(backend: ApiBackend, image_bytes: int) -> int:
    """How many images of `image_bytes` (as sent, base64) one request can carry under the declared limits."""
    limits = backend.limits
    by_bytes = limits.max_request_bytes // image_bytes if limits.max_request_bytes else math.inf
    return int(min(limits.max_images or math.inf, by_bytes))


def sent_bytes(raw_bytes: int) -> int:
    """An image's bytes once base64-encoded for the request."""
    return 4 * math.ceil(raw_bytes / 3)


def estimate_run(backend: ApiBackend, questions: list[dict], cache: ResponseCache, data: Path | None = None) -> Estimate:
    """The run `vhs eval` would make of `questions` on their own images (each encoded as the backend sends it)."""
    images = HaystackImages(cache, data)
    requests = [images.request(question) for question in questions]
    sent = [request for request in requests if over_limit(backend, request) is None]
    dollars = [backend.dollars(request) for request in sent]
    distinct = {image.sha256: image for request in requests for image in request.images}.values()
    encoded = [len(backend.encoder.encode(image).b64) for image in distinct]
    return Estimate(
        len(sent),
        len(requests) - len(sent),
        sum(len(request.images) for request in sent),
        sum(encoded) / len(encoded) if encoded else math.nan,
        sum(backend.prompt_tokens(request) for request in sent),
        None if backend.price is None else sum(d[0] for d in dollars if d),
        None if backend.price is None else sum(d[1] for d in dollars if d),
    )


def estimate_paper_run(backend: ApiBackend, sizes: tuple[int, ...], prompt: str, per_size: int = PAPER_PER_SIZE) -> Estimate:
    """A paper-sized run: `per_size` questions like `prompt` at each size, on COCO-sized images; a size past the
    backend's limits is not sent."""
    image_tokens = backend.image_tokens(EncodedImage(b"", *COCO_IMAGE))
    fits = images_per_request(backend, sent_bytes(COCO_MEAN_JPEG_BYTES))
    sent = [size for size in sizes if size <= fits]
    tokens = [text_tokens(prompt) + size * image_tokens for size in sent]
    price = backend.price
    dollars = [price.bounds(t, backend.params["max_tokens"]) for t in tokens] if price else []
    return Estimate(
        per_size * len(sent),
        per_size * (len(sizes) - len(sent)),
        per_size * sum(sent),
        sent_bytes(COCO_MEAN_JPEG_BYTES),
        per_size * sum(tokens),
        None if price is None else per_size * sum(d[0] for d in dollars),
        None if price is None else per_size * sum(d[1] for d in dollars),
    )
