"""The image encoder and its CLIP-style text partner.

The image encoder (a residual CNN) turns a 64x64 scene into an 8x8 grid of patch features: 64
tokens, the vision tower of every synth model. Training has two phases (ours, chosen to fit a CPU
budget; CLIP itself learns everything contrastively):
1. the encoder learns which objects each image holds (image-level presence through a smooth max over
   patches) and where (per-patch presence from the annotation boxes);
2. the CLIP-style pair is aligned contrastively on the frozen encoder's features: each image against a
   caption naming a random non-empty subset of its visible objects ("a red circle , a blue star"), so
   the text side learns what one object's name looks like. Training both at once made the patch
   features markedly worse (the book's appendix on tuning).
The CLIP-style retriever ranks a haystack by the similarity of each image to the anchor's name.
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vhs.data.catalog import PRESENT, Catalog
from vhs.synth_models.checkpoint import Checkpointable
from vhs.synth_models.data import Presence, load_pixels, patch_labels, to_float
from vhs.synth_models.features import patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.tokenizer import Tokenizer, caption_of

PATCH_WEIGHT = 0.3  # per-patch presence from the boxes, beside image-level presence
INFERENCE_CHUNK = 64  # images per eval-mode pass: a larger batch falls out of cache and is slower


@dataclass
class ClipConfig:
    """Sizes of the encoder pair."""

    width: int = 96  # patch feature size
    embed: int = 64  # joint embedding size
    text_layers: int = 1
    heads: int = 4
    max_text: int = 40
    vocab: int = len(Tokenizer())
    categories: int = 25


def conv_bn_gelu(channels_in: int, channels_out: int, stride: int) -> list[nn.Module]:
    """A 3x3 convolution, BatchNorm and GELU."""
    return [nn.Conv2d(channels_in, channels_out, 3, stride=stride, padding=1), nn.BatchNorm2d(channels_out), nn.GELU()]


class ResidualBlock(nn.Module):
    """x -> gelu(x + bn(conv(gelu(bn(conv(x)))))): two 3x3 convolutions at one resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn_gelu(channels, channels, 1), nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x + self.body(x))


class ImageEncoder(nn.Module):
    """64x64 RGB -> (64 patches, width): three stride-2 convolutions (16 channels at 32x32, 48 at 16x16,
    `width` at 8x8), a residual block after the second and the third, a 1x1 projection, and a learned
    position per patch.

    The cheapest of the encoders tried for its presence accuracy (the book's appendix on tuning).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            *conv_bn_gelu(3, 16, 2),
            *conv_bn_gelu(16, 48, 2),
            ResidualBlock(48),
            *conv_bn_gelu(48, width, 2),
            ResidualBlock(width),
            nn.Conv2d(width, width, 1),
        )
        self.position = nn.Parameter(torch.zeros(1, 64, width))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, 64, 64) floats -> (B, 64, width) patch features; in eval mode (every image on its own)
        computed `INFERENCE_CHUNK` images at a time."""
        if self.training:
            return self._patches(pixels)
        return torch.cat([self._patches(part) for part in pixels.split(INFERENCE_CHUNK)])

    def _patches(self, pixels: torch.Tensor) -> torch.Tensor:
        grid = self.convs(pixels.contiguous(memory_format=torch.channels_last))  # oneDNN's fast layout on the CPU
        return grid.flatten(2).transpose(1, 2) + self.position


class TextEncoder(nn.Module):
    """Word ids -> one normalised embedding: embeddings, a small transformer, mean over real tokens."""

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.tokens = nn.Embedding(config.vocab, config.embed, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(1, config.max_text, config.embed))
        layer = nn.TransformerEncoderLayer(
            config.embed, config.heads, 2 * config.embed, dropout=0.0, batch_first=True, norm_first=True
        )
        self.layers = nn.TransformerEncoder(layer, config.text_layers, enable_nested_tensor=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids, 0-padded -> (B, embed)."""
        real = ids != 0
        hidden = self.layers(self.tokens(ids) + self.position[:, : ids.shape[1]], src_key_padding_mask=~real)
        return (hidden * real.unsqueeze(-1)).sum(1) / real.sum(1, keepdim=True).clamp(min=1)


class Clip(Checkpointable):
    """The encoder pair; `encode_image`/`encode_text` give unit vectors whose dot product ranks images."""

    kind = "synth-clip"
    config_class = ClipConfig

    def __init__(self, config: ClipConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = ImageEncoder(config.width)
        self.image_head = nn.Linear(2 * config.width, config.embed)
        self.presence_head = nn.Linear(config.width, config.categories)
        self.text_encoder = TextEncoder(config)
        self.logit_scale = nn.Parameter(torch.tensor(np.log(1 / 0.07), dtype=torch.float32))

    def image_embedding(self, patches: torch.Tensor) -> torch.Tensor:
        """(B, 64, width) patch features -> (B, embed) unit vectors (mean and max over patches, projected)."""
        return F.normalize(self.image_head(torch.cat([patches.mean(1), patches.amax(1)], dim=-1)), dim=-1)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float pixels -> (B, embed) unit vectors."""
        return self.image_embedding(self.image_encoder(pixels))

    def encode_text(self, ids: torch.Tensor) -> torch.Tensor:
        """Padded word ids -> (B, embed) unit vectors."""
        return F.normalize(self.text_encoder(ids), dim=-1)


def smooth_max(votes: torch.Tensor) -> torch.Tensor:
    """(B, patches, C) per-patch logits -> (B, C): log-mean-exp, a max that lets every patch learn."""
    return torch.logsumexp(votes, dim=1) - float(np.log(votes.shape[1]))


def pad(sequences: list[list[int]], length: int | None = None) -> torch.Tensor:
    """Right-pad id lists with 0 into a (B, length) tensor."""
    length = length or max(len(s) for s in sequences)
    out = np.zeros((len(sequences), length), np.int64)
    for row, sequence in enumerate(sequences):
        out[row, : len(sequence)] = sequence[:length]
    return torch.from_numpy(out)


def padded(sequences: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`pad`'s (B, T) ids and a (B, T) mask, True at each row's real tokens (an id may be 0 there)."""
    ids, lengths = pad(sequences), torch.tensor([len(s) for s in sequences])
    return ids, torch.arange(ids.shape[1])[None] < lengths[:, None]


def visible_names(catalog: Catalog) -> list[list[str]]:
    """For each image, the names of the categories it visibly shows."""
    return [[catalog.category_names[c] for c in np.flatnonzero(row == PRESENT)] for row in catalog.state]


def train_clip(
    catalog: Catalog,
    steps: int,
    seed: int,
    batch: int = 64,
    lr: float = 4e-3,
    patch_weight: float = PATCH_WEIGHT,
    align_steps_per_step: float = 0.5,
    align_batch: int = 128,
    align_lr: float = 3e-3,
) -> tuple[Clip, dict[str, list[float]]]:
    """Train the encoder (`steps` steps), then align the CLIP-style pair on its frozen features
    (`align_steps_per_step` as many steps, of `align_batch` images: more, smaller batches ranked no
    better in the same time; the book's appendix on tuning has the measurements).

    Returns the model and its loss curves, one per phase.
    """
    torch.manual_seed(seed)
    model = Clip(ClipConfig())
    pixels = load_pixels(catalog)
    encoder = _train_encoder(model, pixels, catalog, steps, seed, batch, lr, patch_weight)
    align = _align(model, catalog, max(int(steps * align_steps_per_step), 1), seed, batch=align_batch, lr=align_lr)
    return model.eval(), {"encoder": encoder, "align": align}


def _train_encoder(
    model: Clip, pixels: torch.Tensor, catalog: Catalog, steps: int, seed: int, batch: int, lr: float, patch_weight: float
) -> list[float]:
    """Image-level presence (smooth max over patches) + per-patch presence from the annotation boxes."""
    generator = torch.Generator().manual_seed(seed)
    presence, dense = Presence.of(catalog), patch_labels(catalog)
    model.train()

    def loss_at(step: int) -> torch.Tensor:
        rows = torch.randint(len(pixels), (batch,), generator=generator)
        votes = model.presence_head(model.image_encoder(to_float(pixels[rows])))
        seen = F.binary_cross_entropy_with_logits(smooth_max(votes), presence.present[rows], weight=presence.known[rows].float())
        return seen + patch_weight * F.binary_cross_entropy_with_logits(votes, dense[rows])

    return fit(
        [*model.image_encoder.parameters(), *model.presence_head.parameters()], steps, lr, "train synth-clip encoder", loss_at
    )


def _align(model: Clip, catalog: Catalog, steps: int, seed: int, batch: int, lr: float) -> list[float]:
    """Contrastive (InfoNCE both ways) on (frozen image features, partial caption) pairs."""
    rng = np.random.default_rng(seed)
    tokenizer = Tokenizer()
    names = visible_names(catalog)
    usable = np.array([i for i, n in enumerate(names) if n])
    features = patch_features(model.image_encoder, catalog)

    def loss_at(step: int) -> torch.Tensor:
        chosen = rng.choice(usable, min(batch, len(usable)), replace=False)
        captions = []
        for index in chosen:
            objects = names[index]
            subset = rng.choice(objects, int(rng.integers(1, len(objects) + 1)), replace=False).tolist()
            captions.append(tokenizer.encode(caption_of(subset)))
        images = model.image_embedding(features[torch.from_numpy(chosen)])
        logits = model.logit_scale.exp().clamp(max=100) * images @ model.encode_text(pad(captions)).T
        target = torch.arange(len(chosen))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    parameters = [*model.image_head.parameters(), *model.text_encoder.parameters(), model.logit_scale]
    return fit(parameters, steps, lr, "align synth-clip text", loss_at)
