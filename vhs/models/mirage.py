"""`mirage:DIR`: MIRAGE trained here (`vhs train mirage` or `mirage-query`); any haystack size.

DIR holds either size: the synth MIRAGE, or the coco one (CLIP + a hub LM, `vhs train mirage
--profile coco`), which takes `device` and `dtype` options as the `hf` backend does.

Per distinct image, the encoder's features (and, in `image` compression, the K compressed tokens)
are computed once and kept in a feature store under `$VHS_DATA/cache/mirage/<weights digest>/`, so a
10,000-image haystack on a warm store costs a gather plus the retriever's pass. Each reply carries
the kept haystack positions, from which the runner computes the needles' recall and precision.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from vhs.data.kinds import KINDS
from vhs.errors import VhsError
from vhs.mirage.hub import HubMirage
from vhs.mirage.model import Mirage, MirageMechanisms
from vhs.mirage.store import FeatureStore
from vhs.models.base import BatchedBackend, Retriever
from vhs.paths import data_root
from vhs.protocol import ImageRef, Limits, Reply, Request
from vhs.synth_models.inference import weights_digest

DEFAULT_DIR = "runs/mirage"


def load_mirage(path: Path, device: str = "auto", dtype: str = "auto") -> MirageMechanisms:
    """The MIRAGE checkpoint at `path`, of whichever size its config.json names."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise VhsError(f"no trained model at {path} (run `vhs train mirage --out {path}`)")
    if json.loads(config.read_text()).get("kind") == HubMirage.kind:
        return HubMirage.from_pretrained(path, device, dtype)
    return Mirage.from_pretrained(path)


class MirageBackend(BatchedBackend, Retriever):
    """Retrieve, then answer over the kept images; no haystack is too large."""

    name = "mirage"
    batch_size = 1  # one haystack at a time: a large one is already chunked inside

    def __init__(self, model_id: str = "", store: str = "", device: str = "auto", dtype: str = "auto") -> None:
        path = Path(model_id or DEFAULT_DIR)
        self.model = load_mirage(path, device, dtype)
        digest = weights_digest(path)
        super().__init__(str(path), weights=digest)
        self.limits = Limits()
        self.image_tokens = self.model.config.queries
        compute = self._features if self.model.query_aware else self._tokens
        self.store = FeatureStore(Path(store) if store else data_root() / "cache" / "mirage" / digest, compute)

    def _features(self, images: Sequence[ImageRef]) -> torch.Tensor:
        return self.model.encode_images(images).half()

    @torch.no_grad()
    def _tokens(self, images: Sequence[ImageRef]) -> torch.Tensor:
        return self.model.compress(self.model.encode_images(images)).cpu()

    def haystack_tokens(self, request: Request) -> torch.Tensor:
        """(N, K, lm_width) tokens of the request's images: from the store, or compressed with the question."""
        stored = self.store.of(request.images)
        if not self.model.query_aware:
            return stored
        with torch.no_grad():
            return self.model.compress(stored, self.model.question_ids(request.question))

    def relevance(self, request: Request) -> torch.Tensor:
        """The retriever's logit for each image, given the question."""
        with torch.no_grad():
            return self.model.relevance(self.haystack_tokens(request), self.model.question_ids(request.question))

    def prompt_tokens(self, request: Request) -> int:
        """The LM's tokens at most: k kept images of K tokens each, framed, and the question."""
        keep = KINDS[request.kind].keep
        return self.model.lm_tokens(min(keep, len(request.images)), self.model.question_ids(request.question))

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Each haystack: score every image, keep by the official rule, answer over the kept ones."""
        replies = []
        for request in requests:
            text, kept = self.model.answer(self.haystack_tokens(request), request.question, KINDS[request.kind].keep)
            tokens = self.model.lm_tokens(len(kept), self.model.question_ids(request.question))
            replies.append(Reply(text=text, input_tokens=tokens, output_tokens=1, images_sent=len(kept), kept=tuple(kept)))
        return replies
