"""The retriever: one relevance logit per image, each image scored on its own, and the selection rule.

A small transformer encoder reads [the image's K projected tokens ; the question's word embeddings
through a linear projection] plus learned positions (zero at the start, so they add no noise before
they have learned something); the mean over real tokens goes through a linear layer to one logit.
"""

import torch
from torch import nn

TOP_K = {"single": 1, "all": 3, "any": 3}  # images kept: 1 for a single-needle question, 3 for multi-needle


class Retriever(nn.Module):
    """(N, K, width) image tokens + (N or 1, T, width) question -> (N,) relevance logits."""

    def __init__(self, width: int, tokens: int, max_question: int, layers: int, heads: int) -> None:
        super().__init__()
        self.question = nn.Linear(width, width)
        self.position = nn.Parameter(torch.zeros(1, tokens + max_question, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.score = nn.Linear(width, 1)

    def forward(self, images: torch.Tensor, question: torch.Tensor, question_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`question_mask` (N, T) marks real question tokens when questions are padded."""
        count, tokens = images.shape[:2]
        words = self.question(question).expand(count, -1, -1)
        x = torch.cat([images, words], dim=1) + self.position[:, : tokens + words.shape[1]]
        real = torch.ones(x.shape[:2], dtype=torch.bool)
        if question_mask is not None:
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
