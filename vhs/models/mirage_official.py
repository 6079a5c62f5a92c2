"""`mirage-official[:REPO_OR_DIR]`: the released MIRAGE-8.3B (default `tsunghanwu/mirage-llama3.1-8.3B`).

Loaded through transformers' `from_pretrained` (downloaded on first use into the Hub's cache, or from a
folder), strictly, with CLIP from the checkpoint's `mm_vision_tower` (`vhs.mirage.official`). Each
distinct image's 32 projected tokens are computed once and kept in a feature store under
`$VHS_DATA/cache/mirage-official/<weights revision>/`, as for the MIRAGE trained here, so a 10,000-image
haystack encodes only the images it has not seen. Each reply carries the kept haystack positions, from
which the runner computes the needles' recall. Options: `store` (another feature store folder), `device`,
`dtype` (auto: bfloat16 on CUDA, float32 on the CPU), `max_new_tokens` (8; the official script allows 512,
the answer is its first word).
"""

from collections.abc import Sequence

import torch

from vhs.data.kinds import KINDS
from vhs.data.released import MIRAGE_REPO
from vhs.mirage.official import ReleasedMirage
from vhs.mirage.store import model_store
from vhs.models.base import BatchedBackend, Retriever
from vhs.models.hf import weights_revision
from vhs.protocol import ImageRef, Limits, Reply, Request


class OfficialMirageBackend(BatchedBackend, Retriever):
    """The released checkpoint: retrieve by the official rule, then answer greedily over the kept images."""

    name = "mirage-official"
    batch_size = 1  # one haystack at a time: a large one is chunked inside

    def __init__(
        self, model_id: str = "", store: str = "", device: str = "auto", dtype: str = "auto", max_new_tokens: str = "8"
    ) -> None:
        model_id = model_id or MIRAGE_REPO
        self.model = ReleasedMirage(model_id, device, dtype)
        revision = weights_revision(model_id, self.model.config)
        super().__init__(
            model_id,
            dtype=str(self.model.dtype).removeprefix("torch."),
            max_new_tokens=int(max_new_tokens),
            weights=revision,
        )
        self.limits = Limits()
        self.image_tokens = self.model.queries
        self.store = model_store("mirage-official", model_id, revision, self.params["dtype"], store, self._tokens)

    def _tokens(self, images: Sequence[ImageRef]) -> torch.Tensor:
        return self.model.image_tokens([image.path for image in images])

    def relevance(self, request: Request) -> torch.Tensor:
        """The retriever's probability for each image, given the question."""
        return self.model.scores(self.store.of(request.images), request.question)

    def prompt_tokens(self, request: Request) -> int:
        """The LM's tokens at most: k kept images, the conversation and the question."""
        return self.model.lm_tokens(min(KINDS[request.kind].keep, len(request.images)), request.question)

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """Each haystack: score every image, keep by the official rule, answer over the kept ones."""
        replies = []
        tokenizer = self.model.tokenizer
        cap = self.params["max_new_tokens"]
        for request in requests:
            kept, ids = self.model.answer(self.store.of(request.images), request.question, KINDS[request.kind].keep, cap)
            ended = tokenizer.eos_token_id in ids or len(ids) < cap
            replies.append(
                Reply(
                    text=tokenizer.decode(ids, skip_special_tokens=True).strip(),
                    input_tokens=self.model.lm_tokens(len(kept), request.question),
                    output_tokens=len(ids),
                    images_sent=len(kept),
                    kept=tuple(kept),
                    stop_reason="stop" if ended else "length",
                )
            )
        return replies
