"""The MIRAGE model: frozen encoder -> Q-Former -> projector; a retriever keeps a few images; the LM
answers over the kept images' K tokens each. `MirageMechanisms` is what every size shares; `Mirage`
is the synth size (the synth encoder and the tiny LM, framed as the reader's captions are); the coco
size (CLIP and a hub LM) is `vhs.mirage.hub.HubMirage`."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from vhs.mirage.compressor import QFormer
from vhs.mirage.retriever import Retriever, select
from vhs.protocol import ImageRef
from vhs.synth_models.checkpoint import Checkpointable
from vhs.synth_models.clip import ImageEncoder, padded
from vhs.synth_models.data import to_float
from vhs.synth_models.inference import read_pixels
from vhs.synth_models.llava import frame, frame_length
from vhs.synth_models.lm import LMConfig, TinyLM, yes_or_no
from vhs.synth_models.tokenizer import Tokenizer

COMPRESSIONS = ("image", "query")


@dataclass
class MirageConfig:
    """Sizes; `compression` is `image` (released code) or `query` (query-aware)."""

    width: int = 96  # encoder
    lm_width: int = 96
    layers: int = 2
    heads: int = 4
    context: int = 256
    vocab: int = len(Tokenizer())
    queries: int = 8  # tokens per image (paper: 32 against CLIP's 576)
    qformer_layers: int = 2
    retriever_layers: int = 2
    max_question: int = 32
    compression: str = "image"
    chunk: int = 256  # images scored per retriever pass


class MirageMechanisms:
    """What every MIRAGE shares, whatever its encoder and LM: compression, retrieval and answering over
    the kept images, `chunk` images at a time. A subclass (an nn.Module) holds `config` (with `chunk`),
    `qformer`, `question_in` (None in image mode), `projector`, `retriever`, a `tokenizer` with `yes`,
    `no` and `answers`, and implements the five encoder and LM hooks below."""

    config: Any
    qformer: QFormer
    question_in: nn.Module | None
    projector: nn.Module
    retriever: Retriever
    tokenizer: Any

    def encode_images(self, images: Sequence[ImageRef]) -> torch.Tensor:
        """Image files -> (N, patches, width) features of the frozen encoder."""
        raise NotImplementedError

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """Word ids -> the LM's input embeddings, as floats on the model's device."""
        raise NotImplementedError

    def question_ids(self, question: str) -> list[int]:
        """The question's word ids as the retriever (and the LM, after the images) reads them."""
        raise NotImplementedError

    def answer_logits(self, kept: list[torch.Tensor], prompts: list[list[int]]) -> torch.Tensor:
        """Per sample, the kept images' (n, K, lm_width) tokens and the question ids -> (B, vocab) answer logits."""
        raise NotImplementedError

    def lm_tokens(self, images: int, question: list[int]) -> int:
        """The LM's sequence length for `images` kept images and this question."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """Where the trained parts live (features are kept off it and moved a chunk at a time)."""
        return next(self.projector.parameters()).device

    @property
    def query_aware(self) -> bool:
        """Whether the compression reads the question (so compressed tokens cannot be cached per image)."""
        return self.question_in is not None

    def compress(self, features: torch.Tensor, question: list[int] | None = None) -> torch.Tensor:
        """(N, patches, width) encoder features -> (N, K, lm_width) projected tokens, `chunk` images at a
        time; `question` (word ids) is read only in query mode."""
        return self.compress_samples(features, [len(features)], None if question is None else [question])

    def compress_samples(
        self, features: torch.Tensor, counts: list[int], questions: list[list[int]] | None = None
    ) -> torch.Tensor:
        """Several samples' images in one pass: `features` holds `counts[i]` images of sample i in a row,
        read (in query mode) with `questions[i]`; -> (sum(counts), K, lm_width) tokens."""
        context = mask = None
        if self.query_aware and questions is not None:
            ids, real = padded(questions)
            context = self.question_in(self.word_embeddings(ids))
            if len(questions) > 1:  # padded: each image reads its own sample's question
                repeats = torch.tensor(counts, device=context.device)
                mask = real.to(context.device).repeat_interleave(repeats, dim=0)
                context = context.repeat_interleave(repeats, dim=0)
        return self._in_chunks(lambda part, c, m: self.projector(self.qformer(part, c, m)), features, context, mask)

    def relevance(self, tokens: torch.Tensor, question: list[int]) -> torch.Tensor:
        """(N, K, lm_width) -> (N,) relevance logits, scored `chunk` images at a time."""
        words = self.word_embeddings(torch.tensor(question)).unsqueeze(0)
        return self._in_chunks(lambda part: self.retriever(part, words), tokens)

    def _in_chunks(self, step: Callable[..., torch.Tensor], rows: torch.Tensor, *aligned: torch.Tensor | None) -> torch.Tensor:
        """`step` over `chunk` rows at a time (moved to the device as floats), results concatenated:
        memory stays flat as N grows. Each of `aligned` (None, one row for all, or one per row) is
        passed along, cut to the same rows."""
        chunk = self.config.chunk

        def cut(extra: torch.Tensor | None, start: int) -> torch.Tensor | None:
            return extra if extra is None or len(extra) == 1 else extra[start : start + chunk]

        return torch.cat(
            [
                step(rows[s : s + chunk].to(self.device, torch.float32), *(cut(a, s) for a in aligned))
                for s in range(0, len(rows), chunk)
            ]
        )

    @torch.no_grad()
    def answer(self, tokens: torch.Tensor, question: str, keep: int) -> tuple[str, list[int]]:
        """One haystack's (N, K, lm_width) tokens -> ("Yes"/"No", the kept haystack positions, at most `keep`)."""
        ids = self.question_ids(question)
        kept = select(torch.sigmoid(self.relevance(tokens, ids)).cpu(), keep)
        logits = self.answer_logits([tokens[kept].to(self.device, torch.float32)], [ids])
        return yes_or_no(logits, self.tokenizer.yes, self.tokenizer.no)[0], kept


class Mirage(MirageMechanisms, Checkpointable):
    """The synth MIRAGE: the synth encoder (frozen) and the tiny LM; everything after the encoder trains."""

    kind = "mirage"
    config_class = MirageConfig

    @classmethod
    def training_name(cls, config: dict) -> str:
        """ "mirage-query" for a query-aware checkpoint, else "mirage"."""
        return "mirage-query" if config.get("compression") == "query" else cls.kind

    def __init__(self, config: MirageConfig) -> None:
        super().__init__()
        if config.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {config.compression!r}")
        self.config = config
        self.tokenizer = Tokenizer()
        self.image_encoder = ImageEncoder(config.width)
        self.qformer = QFormer(config.width, config.queries, config.qformer_layers, config.heads)
        self.question_in = nn.Linear(config.lm_width, config.width) if config.compression == "query" else None
        self.projector = nn.Sequential(
            nn.Linear(config.width, config.lm_width), nn.GELU(), nn.Linear(config.lm_width, config.lm_width)
        )
        self.retriever = Retriever(config.lm_width, config.queries, config.max_question, config.retriever_layers, config.heads)
        self.lm = TinyLM(LMConfig(config.vocab, config.lm_width, config.layers, config.heads, config.context))

    @torch.no_grad()
    def encode_images(self, images: Sequence[ImageRef]) -> torch.Tensor:
        """The synth encoder's 64 patch features per image."""
        return self.image_encoder(to_float(read_pixels(images)))

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """The tiny LM's word embeddings."""
        return self.lm.words(ids)

    def question_ids(self, question: str) -> list[int]:
        """The question's word ids, ending on its target's name (as every synth LM reads them)."""
        return self.tokenizer.question(question)[: self.config.max_question]

    def answer_logits(self, kept: list[torch.Tensor], prompts: list[list[int]]) -> torch.Tensor:
        """The kept tokens framed as the reader's captions are ("image N : <K tokens> ."), then the question."""
        return self.lm(*frame(self.lm, self.tokenizer, kept, prompts))

    def lm_tokens(self, images: int, question: list[int]) -> int:
        """`frame`'s length for `images` kept images of K tokens and this question."""
        return frame_length(self.tokenizer, images, self.config.queries, len(question))
