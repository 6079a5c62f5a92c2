"""`clip-retrieve:CLIP[?reader=READER][&query=anchor|question]`: rank the haystack by CLIP similarity to the
anchor's name (or, `query=question`, to the whole question's text, as a CLIP retriever would be given it in
practice), then let the reader answer on the top-k images (k=1 single needle, 3 multi).

CLIP is either the CLIP-style model trained here (a `synth-clip` folder; the reader then is a synth-llava
folder) or a transformers CLIP by hub id or folder (`openai/clip-vit-large-patch14-336` on the coco profile,
downloaded on first use; the reader then is any backend spec without options, default
`hf:llava-hf/llava-1.5-7b-hf`). A transformers CLIP's image embeddings go through a feature store under
`$VHS_DATA/cache/clip/<weights revision>/` (`?store=DIR`), so each distinct image is embedded once.

The anchor is the request's: the object the question asks about, which a user names; k is the question kind's.
"""

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import torch

from vhs.data.kinds import KINDS, with_article
from vhs.devices import resolve_device, resolve_dtype
from vhs.errors import VhsError
from vhs.mirage.store import model_store
from vhs.models.base import Backend, Retriever
from vhs.models.synth_llava import SynthLlavaBackend
from vhs.protocol import ImageRef, Reply, Request, open_rgb
from vhs.synth_models.clip import Clip, pad
from vhs.synth_models.data import to_float
from vhs.synth_models.inference import PerImage, weights_digest
from vhs.synth_models.tokenizer import Tokenizer

DEFAULT_DIR = "runs/synth-clip"
HUB_READER = "hf:llava-hf/llava-1.5-7b-hf"


class ClipRanker:
    """The CLIP-style retriever: scores a haystack's images by similarity to any text (one embedding per distinct image)."""

    def __init__(self, path: Path) -> None:
        self.clip = Clip.from_pretrained(path)
        self.tokenizer = Tokenizer()
        self.embeddings = PerImage(lambda pixels: list(self._embed(pixels)))
        self.weights = weights_digest(path)

    @torch.no_grad()
    def _embed(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.clip.encode_image(to_float(pixels[s : s + 512])) for s in range(0, len(pixels), 512)])

    @torch.no_grad()
    def scores(self, images: tuple[ImageRef, ...], text: str) -> torch.Tensor:
        """(N,) cosine similarity of each image to `text` (a question, or an object's name)."""
        query = self.clip.encode_text(pad([self.tokenizer.encode(text)]))[0]
        return torch.stack(self.embeddings.of(images)) @ query


class HubClipRanker:
    """A transformers CLIP as the retriever: cosine similarity of its image and text embeddings."""

    def __init__(self, model_id: str, store: str = "", device: str = "auto", dtype: str = "auto") -> None:
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        from vhs.models.hf import weights_revision

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        try:
            self.model = CLIPModel.from_pretrained(model_id, dtype=self.dtype).to(self.device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(model_id)
            self.processor = CLIPImageProcessor.from_pretrained(model_id)
        except OSError as exc:
            raise VhsError(f"cannot load CLIP {model_id!r}: {str(exc).splitlines()[0]}") from None
        self.weights = weights_revision(model_id, self.model.config)
        self.embeddings = model_store("clip", model_id, self.weights, str(self.dtype), store, self._embed)

    @torch.no_grad()
    def _embed(self, images: Sequence[ImageRef]) -> torch.Tensor:
        pixels = self.processor(images=[open_rgb(i.path) for i in images], return_tensors="pt")["pixel_values"]
        features = self.model.get_image_features(pixel_values=pixels.to(self.device, self.dtype))
        return torch.nn.functional.normalize(_tensor(features).float(), dim=-1).cpu()

    @torch.no_grad()
    def scores(self, images: tuple[ImageRef, ...], text: str) -> torch.Tensor:
        """(N,) cosine similarity of each image to `text`, the text cut to CLIP's 77-token window."""
        window = self.model.config.text_config.max_position_embeddings
        tokens = self.tokenizer([text], return_tensors="pt", truncation=True, max_length=window).to(self.device)
        query = torch.nn.functional.normalize(_tensor(self.model.get_text_features(**tokens)).float(), dim=-1)[0]
        return self.embeddings.of(images) @ query.cpu()


def _tensor(output: object) -> torch.Tensor:
    """A `get_*_features` result as a tensor (transformers 5 may return a model output holding it)."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _is_hub_clip(model_id: str) -> bool:
    """Whether `model_id` names a transformers CLIP: a folder whose config says `model_type: clip`, or a hub id
    (`owner/name` where no folder `owner` is here; `runs/synth-clip` before training is the synth one, missing)."""
    path = Path(model_id)
    if path.is_dir():
        config = path / "config.json"
        return config.is_file() and json.loads(config.read_text()).get("model_type") == "clip"
    return model_id.count("/") == 1 and not Path(model_id.split("/")[0]).is_dir()


QUERIES = ("anchor", "question")


class ClipRetrieveBackend(Backend, Retriever):
    """Retriever + reader; scales to any haystack size."""

    name = "clip-retrieve"

    def __init__(
        self,
        model_id: str = "",
        reader: str = "",
        query: str = "anchor",
        store: str = "",
        device: str = "auto",
        dtype: str = "auto",
    ) -> None:
        if query not in QUERIES:
            raise VhsError(f"clip-retrieve's query is one of {', '.join(QUERIES)}, not {query!r}")
        path = Path(model_id or DEFAULT_DIR)
        if model_id and _is_hub_clip(model_id):  # the default is the CLIP trained here, trained or not yet
            from vhs.models.registry import load_backend  # the registry names this module: import it when used

            self.ranker: ClipRanker | HubClipRanker = HubClipRanker(str(path), store, device, dtype)
            self.reader: Backend = load_backend(reader or HUB_READER)
        else:
            self.ranker = ClipRanker(path)
            self.reader = SynthLlavaBackend(reader)
        self.query = query
        # the default query stays out of the identity, so answers cached before the option existed still match
        extra = {"query": query} if query != "anchor" else {}
        super().__init__(str(path), weights=self.ranker.weights, reader=self.reader.identity(), **extra)

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
