"""`clip-retrieve:CLIP_DIR[?reader=LLAVA_DIR][&query=anchor|question]`: rank the haystack by CLIP-style
similarity to the anchor's name (or, `query=question`, to the whole question's text, as a CLIP retriever
would be given it in practice), then answer on the top-k images (k=1 single needle, 3 multi) with
synth-llava.

The anchor is the request's: the object the question asks about, which a user names; k is the question kind's.
"""

from dataclasses import replace
from pathlib import Path

import torch

from vhs.data.kinds import KINDS, with_article
from vhs.errors import VhsError
from vhs.models.base import Backend, Retriever
from vhs.models.synth_llava import SynthLlavaBackend
from vhs.protocol import ImageRef, Reply, Request
from vhs.synth_models.clip import Clip, pad
from vhs.synth_models.data import to_float
from vhs.synth_models.inference import PerImage, weights_digest
from vhs.synth_models.tokenizer import Tokenizer

DEFAULT_DIR = "runs/synth-clip"


class ClipRanker:
    """The CLIP-style retriever: scores a haystack's images by similarity to any text (one embedding per distinct image)."""

    def __init__(self, path: Path) -> None:
        self.clip = Clip.from_pretrained(path)
        self.tokenizer = Tokenizer()
        self.embeddings = PerImage(lambda pixels: list(self._embed(pixels)))

    @torch.no_grad()
    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.clip.encode_image(to_float(pixels[s : s + 512])) for s in range(0, len(pixels), 512)])

    @torch.no_grad()
    def scores(self, images: tuple[ImageRef, ...], text: str) -> torch.Tensor:
        """(N,) cosine similarity of each image to `text` (a question, or an object's name)."""
        query = self.clip.encode_text(pad([self.tokenizer.encode(text)]))[0]
        return torch.stack(self.embeddings.of(images)) @ query


QUERIES = ("anchor", "question")


class ClipRetrieveBackend(Backend, Retriever):
    """Retriever + reader; scales to any haystack size."""

    name = "clip-retrieve"

    def __init__(self, model_id: str = "", reader: str = "", query: str = "anchor") -> None:
        if query not in QUERIES:
            raise VhsError(f"clip-retrieve's query is one of {', '.join(QUERIES)}, not {query!r}")
        path = Path(model_id or DEFAULT_DIR)
        self.ranker = ClipRanker(path)
        self.reader = SynthLlavaBackend(reader)
        self.query = query
        # the default query stays out of the identity, so answers cached before the option existed still match
        extra = {"query": query} if query != "anchor" else {}
        super().__init__(str(path), weights=weights_digest(path), reader=self.reader.identity(), **extra)

    def relevance(self, request: Request) -> torch.Tensor:
        """Each image's similarity to the anchor's name (or to the question's text)."""
        text = with_article(request.anchor) if self.query == "anchor" else request.question
        return self.ranker.scores(request.images, text)

    def rank(self, request: Request) -> list[int]:
        """Haystack positions, most relevant first."""
        return self.relevance(request).argsort(descending=True).tolist()

    def generate(self, request: Request) -> Reply:
        """Keep the top-k images in haystack order and let the reader answer on them."""
        kept = sorted(self.rank(request)[: KINDS[request.kind].keep])
        reply = self.reader.generate(replace(request, images=tuple(request.images[i] for i in kept)))
        return Reply(text=reply.text, input_tokens=reply.input_tokens, output_tokens=1, images_sent=len(kept), kept=tuple(kept))
