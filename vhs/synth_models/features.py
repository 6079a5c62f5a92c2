"""Patch features of the frozen image encoder over a whole catalog, computed once per encoder.

Every model trained on the encoder (the CLIP-style alignment, the captioner, synth-caption's
captions, synth-llava, both MIRAGEs) reads the same training split through the same frozen weights, so the features are written
beside the split's pixels, under a digest of the encoder's weights, and read back by the next model.
"""

import hashlib

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from vhs.data.catalog import Catalog
from vhs.paths import atomic_path
from vhs.synth_models.data import load_pixels, to_float


def encoder_digest(module: nn.Module) -> str:
    """A short sha256 of a module's parameters and buffers (names and bytes)."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def patch_features(encoder: nn.Module, catalog: Catalog, batch: int = 512, progress: bool = True) -> torch.Tensor:
    """(N, 64, width) float32 features of the (frozen) encoder for every image of `catalog`, read from
    `features-<digest>.safetensors` beside its pixels when this encoder has computed them before."""
    encoder.eval()
    path = catalog.root / f"features-{encoder_digest(encoder)}.safetensors"
    if path.exists():
        return load_file(path)["features"]
    pixels = load_pixels(catalog)
    chunks = [
        encoder(to_float(pixels[start : start + batch]))
        for start in tqdm(range(0, len(pixels), batch), desc="encode images", unit="batch", leave=False, disable=not progress)
    ]
    features = torch.cat(chunks).contiguous()
    for stale in catalog.root.glob("features-*.safetensors"):  # an earlier encoder's
        if stale != path:
            stale.unlink(missing_ok=True)
    with atomic_path(path) as partial:  # two trainings may write at once
        save_file({"features": features}, partial)
    return features
