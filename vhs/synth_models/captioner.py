"""The captioner: the frozen image encoder plus a head that writes the caption listing what it sees.

Each patch votes for every category through a small MLP; a category's logit is a smooth maximum of
the votes (log-mean-exp over patches), so a small object in one corner counts. The caption lists, in vocabulary order,
the categories whose logit passes the threshold chosen after training (recall and specificity balanced):
"a red circle , a blue star", or "nothing".
"""

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vhs.data.catalog import Catalog
from vhs.synth_models.checkpoint import Checkpointable
from vhs.synth_models.clip import Clip, ImageEncoder, smooth_max
from vhs.synth_models.data import Presence, to_float
from vhs.synth_models.features import patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.tokenizer import caption_of


@dataclass
class CaptionerConfig:
    """Encoder width and the category names the head predicts."""

    width: int = 96
    categories: list[str] = field(default_factory=list)
    threshold: float = 0.0  # logit above which a category is written; set after training


class Captioner(Checkpointable):
    """Encoder + per-patch presence head."""

    kind = "synth-captioner"
    config_class = CaptionerConfig

    def __init__(self, config: CaptionerConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoder = ImageEncoder(config.width)
        self.head = nn.Sequential(
            nn.Linear(config.width, config.width), nn.GELU(), nn.Linear(config.width, len(config.categories))
        )

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, 64, width) -> (B, C) presence logits, 1,024 images at a time (a whole split's features
        fit in memory; the head's per-patch activations for all of them need not)."""
        return torch.cat([smooth_max(self.head(part)) for part in features.split(1024)])

    @torch.no_grad()
    def captions(self, pixels: torch.Tensor) -> list[str]:
        """uint8 (B, 3, H, W) -> one caption per image."""
        return self.captions_from_features(self.image_encoder(to_float(pixels)))

    @torch.no_grad()
    def captions_from_features(self, features: torch.Tensor) -> list[str]:
        """(B, 64, width) encoder features -> one caption per image: the categories above the threshold."""
        present = self.logits_from_features(features) > self.config.threshold
        return [caption_of([self.config.categories[c] for c in np.flatnonzero(row.numpy())]) for row in present]


def train_captioner(
    clip: Clip, catalog: Catalog, steps: int, seed: int, batch: int = 512, lr: float = 3e-3
) -> tuple[Captioner, dict[str, list[float]]]:
    """Train the presence head on frozen CLIP features (ambiguous categories masked out)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = Captioner(CaptionerConfig(width=clip.config.width, categories=list(catalog.category_names)))
    model.image_encoder.load_state_dict(clip.image_encoder.state_dict())
    model.image_encoder.requires_grad_(False)
    features = patch_features(model.image_encoder, catalog)
    targets = Presence.of(catalog)

    def loss_at(step: int) -> torch.Tensor:
        rows = torch.randint(len(features), (batch,), generator=generator)
        logits = model.logits_from_features(features[rows])
        return F.binary_cross_entropy_with_logits(logits, targets.present[rows], weight=targets.known[rows].float())

    curve = fit(model.head.parameters(), steps, lr, "train synth-captioner", loss_at)
    with torch.no_grad():
        model.config.threshold = balanced_threshold(
            model.logits_from_features(features[:4096]), targets.present[:4096], targets.known[:4096]
        )
    return model.eval(), {"train": curve}


def balanced_threshold(logits: torch.Tensor, present: torch.Tensor, known: torch.Tensor) -> float:
    """The logit threshold (on a 0.25 grid) that maximises the mean of recall and specificity.

    A yes/no question is as likely to ask about a present object as an absent one, so the caption
    should miss as few as it invents; a threshold of 0 misses many more than it invents.
    """
    grid = torch.arange(-6.0, 2.01, 0.25)
    positive, negative = (present > 0) & known, (present == 0) & known
    scores = [((logits > t) & positive).sum() / positive.sum() + ((logits <= t) & negative).sum() / negative.sum() for t in grid]
    return float(grid[int(torch.stack(scores).argmax())])
