"""Training data for the synth models: a training split generated with its own seed, decoded once.

The evaluation haystacks come from `synth/eval` (seed 0); everything here reads `synth/train`
(seed 1), so no evaluation image is ever seen in training.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from vhs.data.catalog import AMBIGUOUS, PRESENT, Catalog
from vhs.data.profiles import SynthSplit, ensure_synth, load_profile_catalog
from vhs.paths import atomic_path, data_root

SYNTH_TRAIN = SynthSplit(name="train", images=20_000, seed=1)


def train_dir() -> Path:
    """Where the training split lives: `$VHS_DATA/synth/train`."""
    return data_root() / "synth" / SYNTH_TRAIN.name


def training_catalog(directory: Path | None = None, split: SynthSplit = SYNTH_TRAIN) -> Catalog:
    """The training split's catalog, generating the split on first use."""
    directory = directory or train_dir()
    ensure_synth(directory, split)
    return load_profile_catalog("synth", directory)


def load_pixels(catalog: Catalog, paths: list[Path] | None = None) -> torch.Tensor:
    """All images of a catalog (or the given files) as a uint8 tensor (N, 3, H, W); a whole catalog's
    are cached beside the data."""
    if paths is not None:
        return torch.from_numpy(_decode(paths))
    return torch.from_numpy(_cached(catalog.root / "pixels.npy", lambda: _decode([catalog.root / p for p in catalog.paths])))


def _decode(files: list[Path]) -> np.ndarray:
    pixels = np.stack(
        [np.asarray(Image.open(f).convert("RGB")) for f in tqdm(files, desc="decode images", unit="img", leave=False)]
    )
    return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))


def _cached(path: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """`compute()`'s array, saved at `path` on first use and read back from it after; written whole
    or not at all (two trainings may write at once)."""
    if path.exists():
        return np.load(path)
    array = compute()
    with atomic_path(path) as partial:
        np.save(partial, array)
    return array


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats centred on 0, as every synth model sees them."""
    return pixels.float().div(127.5).sub(1.0)


@dataclass(frozen=True)
class Presence:
    """Per-image targets: which categories are present (1), absent (0); `known` masks the ambiguous."""

    present: torch.Tensor  # (N, C) float
    known: torch.Tensor  # (N, C) bool

    @classmethod
    def of(cls, catalog: Catalog) -> "Presence":
        state = torch.from_numpy(catalog.state.astype(np.int64))
        return cls((state == PRESENT).float(), state != AMBIGUOUS)


def patch_labels(catalog: Catalog, grid: int = 8) -> torch.Tensor:
    """(N, grid*grid, C) floats: which visible objects' boxes overlap each patch, from the annotation
    file, cached beside it (every model trained on the split reads them)."""
    cache = catalog.root / f"patch-labels-{grid}-{catalog.min_area_frac}.npy"
    return torch.from_numpy(_cached(cache, lambda: _patch_labels(catalog, grid))).float()


def _patch_labels(catalog: Catalog, grid: int) -> np.ndarray:
    document = json.loads((catalog.root / "annotations.json").read_text())
    column = {
        c["id"]: catalog.category_names.index(c["name"]) for c in document["categories"] if c["name"] in catalog.category_names
    }
    row_of = {int(image_id): row for row, image_id in enumerate(catalog.image_ids)}
    sizes = {image["id"]: (image["width"], image["height"]) for image in document["images"]}
    labels = np.zeros((len(catalog.image_ids), grid, grid, len(catalog.category_names)), np.uint8)
    for ann in document["annotations"]:
        width, height = sizes[ann["image_id"]]
        if ann.get("iscrowd") or ann["area"] < catalog.min_area_frac * width * height or ann["category_id"] not in column:
            continue
        x, y, w, h = ann["bbox"]
        cell_w, cell_h = width / grid, height / grid
        rows = slice(int(y // cell_h), int((y + h - 1) // cell_h) + 1)
        cols = slice(int(x // cell_w), int((x + w - 1) // cell_w) + 1)
        labels[row_of[ann["image_id"]], rows, cols, column[ann["category_id"]]] = 1
    return labels.reshape(len(labels), grid * grid, -1)
