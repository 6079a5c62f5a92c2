"""The Q-Former: K learned queries that read an image's patch tokens, so an image costs K tokens, not 64.

Each layer: self-attention among the queries, cross-attention to the patches, an MLP (pre-norm).
Two modes behind one flag (`MirageConfig.compression`):
- `image` (the released code): the queries see only the image, so an image's K tokens are computed
  once and cached whatever the question;
- `query` (the paper's "query-aware" text): the queries' self-attention also reads the question's
  tokens, so the compression depends on the question and only the encoder output can be cached.
The official Q-Former has 4 layers that cross-attend every second layer; this one has 2 that both do.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head attention of `queries` over `context`, with `nn.MultiheadAttention`'s parameters (the same
    names, initialisation and results) computed without its copies: the keys and values come from one
    projection of the context, viewed per head rather than repacked, which makes the Q-Former's step
    faster with the same gradients."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.out_proj = nn.Linear(width, width)
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, ignored: torch.Tensor | None = None) -> torch.Tensor:
        """(N, L, width) queries, (N, S, width) context, `ignored` (N, S) True at padding -> (N, L, width)."""
        (count, length, width), size = queries.shape, context.shape[1]
        head = width // self.heads
        q = (
            F.linear(queries, self.in_proj_weight[:width], self.in_proj_bias[:width])
            .view(count, length, self.heads, head)
            .transpose(1, 2)
        )
        k, v = (
            F.linear(context, self.in_proj_weight[width:], self.in_proj_bias[width:])
            .view(count, size, 2, self.heads, head)
            .permute(2, 0, 3, 1, 4)
        )
        mask = None if ignored is None else ~ignored[:, None, None, :]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(attended.transpose(1, 2).reshape(count, length, width))


class QFormerLayer(nn.Module):
    """queries + self_attn([queries ; question]), + cross_attn(patches), + mlp."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_self, self.norm_cross, self.norm_mlp = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.self_attention = Attention(width, heads)
        self.cross_attention = Attention(width, heads)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(
        self, queries: torch.Tensor, patches: torch.Tensor, question: torch.Tensor | None, ignored: torch.Tensor | None
    ) -> torch.Tensor:
        """`ignored` (N, K + T), True where a context token is padding, or None."""
        h = self.norm_self(queries)
        context = h if question is None else torch.cat([h, question], dim=1)
        x = queries + self.self_attention(h, context, ignored)
        x = x + self.cross_attention(self.norm_cross(x), patches)
        return x + self.mlp(self.norm_mlp(x))


class QFormer(nn.Module):
    """(N, patches, width) -> (N, queries, width); `question` (N or 1, T, width) only in `query` mode,
    with `question_mask` (N, T; True for a real token) when questions are padded."""

    def __init__(self, width: int, queries: int, layers: int, heads: int) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.empty(1, queries, width))
        nn.init.xavier_uniform_(self.queries[0])
        self.layers = nn.ModuleList(QFormerLayer(width, heads) for _ in range(layers))
        self.norm_patches = nn.LayerNorm(width)  # the encoder's features are not normalised
        self.norm = nn.LayerNorm(width)

    def forward(
        self, patches: torch.Tensor, question: torch.Tensor | None = None, question_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.queries.expand(len(patches), -1, -1)
        patches = self.norm_patches(patches)
        ignored = None
        if question is not None:
            question = question.expand(len(patches), -1, -1)
        if question_mask is not None:
            ignored = torch.cat([torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device), ~question_mask], dim=1)
        for layer in self.layers:
            x = layer(x, patches, question, ignored)
        return self.norm(x)
