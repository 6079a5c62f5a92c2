"""The retriever: one relevance logit per image, each image scored on its own, and the selection rule.

A small transformer encoder reads [the image's K projected tokens ; the question's word embeddings
through a linear projection] plus learned positions; the mean over real tokens goes through a linear
layer to one logit. Its MLP is as wide as its tokens: a 10,000-image haystack is 10,000 passes, and a
wider one kept the needle no more often.

How it starts (ours): the caption stage has already put an object's word embedding into the image
tokens, so the question's projection starts as the identity (the anchor's word and the tokens that
carry it are alike from step 0), the attention's keys start tied to its queries (alike tokens attend
to each other, `tie_query_key`), and the positions start random (std 0.05), so the anchor (word 5)
and the target (the last word) differ before anything is learned. Started otherwise, the retriever
sat on a long plateau of low recall (the book's appendix on tuning).
"""

import torch
from torch import nn

from vhs.synth_models.lm import tie_query_key

POSITION_STD = 0.05  # the positions' initial spread, below the word embeddings' own (about 0.08 per dimension)


class Retriever(nn.Module):
    """(N, K, width) image tokens + (N or 1, T, width) question -> (N,) relevance logits."""

    def __init__(self, width: int, tokens: int, max_question: int, layers: int, heads: int) -> None:
        super().__init__()
        self.question = nn.Linear(width, width)
        self.position = nn.Parameter(torch.zeros(1, tokens + max_question, width))
        layer = nn.TransformerEncoderLayer(width, heads, width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.score = nn.Linear(width, 1)
        nn.init.normal_(self.position, std=POSITION_STD)
        with torch.no_grad():
            self.question.weight.copy_(torch.eye(width))
            self.question.bias.zero_()
        for layer in self.encoder.layers:
            tie_query_key(layer.self_attn.in_proj_weight, width)

    def forward(self, images: torch.Tensor, question: torch.Tensor, question_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`question_mask` (N, T) marks real question tokens when questions are padded."""
        count, tokens = images.shape[:2]
        words = self.question(question).expand(count, -1, -1)
        x = torch.cat([images, words], dim=1) + self.position[:, : tokens + words.shape[1]]
        if question_mask is None:  # nothing padded: no mask, a plain softmax (faster)
            return self.score(self.norm(self.encoder(x)).mean(1)).squeeze(-1)
        real = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        real[:, tokens:] = question_mask.expand(count, -1)
        hidden = self.norm(self.encoder(x, src_key_padding_mask=~real))
        pooled = (hidden * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True)
        return self.score(pooled).squeeze(-1)


def select(probabilities: torch.Tensor, k: int, threshold: float = 0.5) -> list[int]:
    """The kept haystack positions, in haystack order: the single best image if none scores >= threshold,
    else the top-k (the official rule)."""
    if len(probabilities) == 0:
        return []
    if probabilities.max() < threshold:
        return [int(probabilities.argmax())]
    return sorted(probabilities.topk(min(k, len(probabilities))).indices.tolist())
