"""A tiny causal language model (nanoGPT-style): pre-norm blocks, causal self-attention, tied embeddings.

It reads a sequence of embeddings (word embeddings, or projected image patches followed by words)
and predicts the next word at each row's last real position, where the answer ("yes"/"no") comes next.

It has no position embeddings (a "NoPE" causal transformer: order comes from the causal mask): learned
ones add noise that drowns the content match every VHs answer needs. Instead, one learned vector marks
the question: it is added to every position from the "question" word on (`TinyLM.forward`), so the
target's copy in a caption (or a patch that shows it) differs from the target itself; without it the
two are the same vector and attending to the copy changes nothing the LM can read. (What each choice
measured: the book's appendix on tuning.) `context` is the window the model is trained and served within.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

QUERY_STD = 0.08  # the initial spread of the (tied) query and key projections; see `tie_query_key`


@dataclass
class LMConfig:
    """Sizes of the LM; `context` is its fixed window in tokens."""

    vocab: int
    width: int = 96
    layers: int = 2
    heads: int = 4
    context: int = 256


class SwiGLU(nn.Module):
    """Llama's MLP: down(silu(gate(x)) * up(x)). The product lets one layer compare two things in the
    residual stream (the question's word and what attention brought back), which a GELU MLP learned
    far more slowly here."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate_up = nn.Linear(width, 2 * hidden)
        self.down = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class Block(nn.Module):
    """x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.norm1 = nn.LayerNorm(config.width)
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.out = nn.Linear(config.width, config.width)
        self.norm2 = nn.LayerNorm(config.width)
        self.mlp = SwiGLU(config.width, 4 * config.width)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, width) -> (B, T, width); with `lengths` (right-padded rows), only each row's last real
        position is computed -> (B, 1, width): every position attends to the keys and values of all, but
        after the last block nothing reads any other position's output."""
        batch, length, width = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(width, dim=2)

        def by_head(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, -1, self.heads, width // self.heads).transpose(1, 2)

        if lengths is None:
            attended = F.scaled_dot_product_attention(by_head(q), by_head(k), by_head(v), is_causal=True)
        else:
            x, q = last_positions(x, lengths)[:, None], last_positions(q, lengths)[:, None]
            visible = (torch.arange(length, device=x.device) < lengths[:, None])[
                :, None, None
            ]  # the causal row of the last position
            attended = F.scaled_dot_product_attention(by_head(q), by_head(k), by_head(v), attn_mask=visible)
        x = x + self.out(attended.transpose(1, 2).reshape(batch, -1, width))
        return x + self.mlp(self.norm2(x))


class TinyLM(nn.Module):
    """Embeddings in, next-word logits out."""

    def __init__(self, config: LMConfig) -> None:
        super().__init__()
        self.config = config
        self.words = nn.Embedding(config.vocab, config.width)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width)
        self.question = nn.Parameter(torch.empty(config.width))  # the question's segment vector
        nn.init.normal_(self.question, std=0.02)
        for module in self.modules():  # nanoGPT's initialisation: small weights, tied embeddings included
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for block in self.blocks:
            nn.init.normal_(block.qkv.weight[: config.width], std=QUERY_STD)
            tie_query_key(block.qkv.weight, config.width)

    def forward(self, embeddings: torch.Tensor, lengths: torch.Tensor, question_starts: torch.Tensor) -> torch.Tensor:
        """Right-padded (B, T, width) embeddings, each row's length and the position where its question
        starts -> (B, vocab) next-word logits at each row's last real position, the only one any synth
        model reads (the answer comes next); the last block computes that position alone.
        T must not exceed the context."""
        in_question = torch.arange(embeddings.shape[1], device=embeddings.device) >= question_starts[:, None]
        x = embeddings + in_question.unsqueeze(-1) * self.question
        for block in self.blocks[:-1]:
            x = block(x)
        return self.norm(self.blocks[-1](x, lengths)[:, 0]) @ self.words.weight.T


def tie_query_key(qkv: torch.Tensor, width: int) -> None:
    """Start the keys' projection (rows width:2*width of a fused query-key-value weight) equal to the
    queries' (rows :width), so every token attends most to copies of itself.

    Every synth answer asks whether a word (the target's name) appeared earlier; with independent
    random projections the reader sits at chance for hundreds of steps first. Tied at the start
    (they train apart freely) and drawn wider than nanoGPT's (`QUERY_STD`), it leaves that plateau
    far sooner.
    """
    with torch.no_grad():
        qkv[width : 2 * width] = qkv[:width]


def question_starts(rows: list[list[int]], marker: int) -> torch.Tensor:
    """Each row's position of its last `marker` word (the id of "question"), where its question starts."""
    return torch.tensor([len(row) - 1 - row[::-1].index(marker) for row in rows])


def last_positions(rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) right-padded rows -> (B, ...): each row at its last real position."""
    return rows[torch.arange(len(lengths)), lengths - 1]


def yes_or_no(logits: torch.Tensor, yes: int, no: int) -> list[str]:
    """ "Yes" or "No" per row of answer logits, whichever of the two words the LM rates higher."""
    return ["Yes" if y else "No" for y in (logits[:, yes] > logits[:, no]).tolist()]
