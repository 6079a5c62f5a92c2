"""`mirage:DIR`: MIRAGE trained here (`vhs train mirage` or `mirage-query`); any haystack size.

Per distinct image, the encoder's features (and, in `image` compression, the K compressed tokens)
are computed once and kept in a feature store under `$VHS_DATA/cache/mirage/<weights digest>/`, so a
10,000-image haystack on a warm store costs a gather plus the retriever's pass. Each reply carries
the kept haystack positions, from which the runner computes the needles' recall and precision.
"""

from pathlib import Path

import torch

from vhs.data.questions import parse_question
from vhs.mirage.model import Mirage
from vhs.mirage.retriever import TOP_K
from vhs.mirage.store import FeatureStore
from vhs.models.base import BatchedBackend, Limits, Reply, Request
from vhs.paths import data_root
from vhs.synth_models.data import to_float
from vhs.synth_models.inference import weights_digest

DEFAULT_DIR = "runs/mirage"


class MirageBackend(BatchedBackend):
    """Retrieve, then answer over the kept images; no haystack is too large."""

    name = "mirage"
    batch_size = 1  # one haystack at a time: a large one is already chunked inside

    def __init__(self, model_id: str = "", store: str = "") -> None:
        path = Path(model_id or DEFAULT_DIR)
        self.model = Mirage.from_pretrained(path)
        digest = weights_digest(path)
        super().__init__(str(path), weights=digest)
        self.limits = Limits()
        compute = self._features if self.model.query_aware else self._tokens
        self.store = FeatureStore(Path(store) if store else data_root() / "cache" / "mirage" / digest, compute)

    @torch.no_grad()
    def _features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.image_encoder(to_float(pixels)).half()

    @torch.no_grad()
    def _tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.compress(self.model.image_encoder(to_float(pixels)))

    def haystack_tokens(self, request: Request) -> torch.Tensor:
        """(N, K, lm_width) tokens of the request's images: from the store, or compressed with the question."""
        stored = self.store.of(request.images)
        if not self.model.query_aware:
            return stored
        with torch.no_grad():
            return self.model.compress(stored.float(), self.model.question_ids(request.question["question"]))

    def prompt_tokens(self, request: Request) -> int:
        """The LM's tokens at most: k kept images of K tokens each, framed, and the question."""
        kind, _, _ = parse_question(request.question["question"])
        return self.model.lm_tokens(min(TOP_K[kind], len(request.images)), self.model.question_ids(request.question["question"]))

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Each haystack: score every image, keep by the official rule, answer over the kept ones."""
        replies = []
        for request in requests:
            kind, _, _ = parse_question(request.question["question"])
            text, kept = self.model.answer(self.haystack_tokens(request), request.question["question"], kind)
            tokens = self.model.lm_tokens(len(kept), self.model.question_ids(request.question["question"]))
            replies.append(Reply(text=text, input_tokens=tokens, output_tokens=1, images_sent=len(kept), kept=tuple(kept)))
        return replies
