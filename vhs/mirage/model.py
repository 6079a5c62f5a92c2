"""The MIRAGE model: frozen encoder -> Q-Former -> projector; a retriever keeps a few images; the tiny
LM answers over the kept images' K tokens each, framed as the reader's captions are."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from vhs.mirage.compressor import QFormer
from vhs.mirage.retriever import TOP_K, Retriever, select
from vhs.synth_models.checkpoint import Checkpointable
from vhs.synth_models.clip import ImageEncoder
from vhs.synth_models.llava import frame, frame_length
from vhs.synth_models.lm import LMConfig, TinyLM, last_logits, yes_or_no
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


class Mirage(Checkpointable):
    """All of MIRAGE's parts; the encoder is frozen, everything after it trains."""

    kind = "mirage"
    config_class = MirageConfig

    def __init__(self, config: MirageConfig) -> None:
        super().__init__()
        if config.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {config.compression!r}")
        self.config = config
        self.tokenizer = Tokenizer()
        self.image_encoder = ImageEncoder(config.width)
        self.qformer = QFormer(config.width, config.queries, config.qformer_layers, config.heads)
        self.question_in = nn.Linear(config.lm_width, config.width) if config.compression == "query" else None
        self.projector = nn.Sequential(nn.Linear(config.width, config.lm_width), nn.GELU(), nn.Linear(config.lm_width, config.lm_width))
        self.retriever = Retriever(config.lm_width, config.queries, config.max_question, config.retriever_layers, config.heads)
        self.lm = TinyLM(LMConfig(config.vocab, config.lm_width, config.layers, config.heads, config.context))

    @property
    def query_aware(self) -> bool:
        """Whether the compression reads the question (so compressed tokens cannot be cached per image)."""
        return self.question_in is not None

    def question_ids(self, question: str) -> list[int]:
        """The question's word ids, ending on its target's name (as every synth LM reads them)."""
        return self.tokenizer.question(question)[: self.config.max_question]

    def compress(self, features: torch.Tensor, question: list[int] | None = None) -> torch.Tensor:
        """(N, 64, width) encoder features -> (N, K, lm_width) projected tokens, `chunk` images at a time;
        `question` (word ids) is read only in query mode."""
        context = None
        if self.query_aware and question is not None:
            context = self.question_in(self.lm.words(torch.tensor(question))).unsqueeze(0)
        return self._in_chunks(lambda part: self.projector(self.qformer(part, context)), features)

    def relevance(self, tokens: torch.Tensor, question: list[int]) -> torch.Tensor:
        """(N, K, lm_width) -> (N,) relevance logits, scored `chunk` images at a time."""
        words = self.lm.words(torch.tensor(question)).unsqueeze(0)
        return self._in_chunks(lambda part: self.retriever(part, words), tokens)

    def _in_chunks(self, step: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
        """`step` over `chunk` rows at a time, results concatenated: memory stays flat as N grows."""
        return torch.cat([step(rows[s : s + self.config.chunk]) for s in range(0, len(rows), self.config.chunk)])

    def answer_logits(self, kept: list[torch.Tensor], prompts: list[list[int]]) -> torch.Tensor:
        """Per sample, the kept images' (n, K, lm_width) tokens and the question ids -> (B, vocab) answer logits."""
        embeddings, lengths = frame(self.lm, self.tokenizer, kept, prompts)
        return last_logits(self.lm(embeddings), lengths)

    def lm_tokens(self, images: int, question: list[int]) -> int:
        """The LM's sequence length for `images` kept images and this question."""
        return frame_length(self.tokenizer, images, self.config.queries, len(question))

    @torch.no_grad()
    def answer(self, tokens: torch.Tensor, question: str, kind: str) -> tuple[str, list[int]]:
        """One haystack's (N, K, lm_width) tokens -> ("Yes"/"No", the kept haystack positions)."""
        ids = self.question_ids(question)
        kept = select(torch.sigmoid(self.relevance(tokens, ids)), TOP_K[kind])
        logits = self.answer_logits([tokens[kept]], [ids])
        return yes_or_no(logits, self.tokenizer.yes, self.tokenizer.no)[0], kept
