"""What the synth backends share at inference: pixels and encoder features per image, computed once."""

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from vhs.protocol import ImageRef, open_rgb


def weights_digest(path: Path) -> str:
    """A short hash of a checkpoint's weights, so a retrained model never hits an old cache entry."""
    weights = Path(path) / "model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest()[:16]


def read_pixels(images: Sequence[ImageRef]) -> torch.Tensor:
    """uint8 (N, 3, H, W) for the given images; a corrupt file is a BackendError naming it."""
    arrays = [np.asarray(open_rgb(image.path)) for image in images]
    return torch.from_numpy(np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2)))


class PerImage:
    """Memoises a per-image computation (features, embeddings, captions) by content hash."""

    def __init__(self, compute: Callable[[torch.Tensor], list], limit: int = 50_000) -> None:
        self._compute = compute
        self._known: dict[str, object] = {}
        self._limit = limit

    def of(self, images: Sequence[ImageRef]) -> list:
        """One result per image, computing only the ones not seen before (in one batch)."""
        missing = list({i.sha256: i for i in images if i.sha256 not in self._known}.values())
        if missing:
            if len(self._known) + len(missing) > self._limit:
                self._known.clear()
            for image, result in zip(missing, self._compute(read_pixels(missing)), strict=True):
                self._known[image.sha256] = result
        return [self._known[i.sha256] for i in images]
