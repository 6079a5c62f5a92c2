"""Per-image tensors (encoder features, compressed tokens) computed once and kept on disk.

A store is a directory of safetensors shards: each `shard-NNNNN.safetensors` holds a `values` tensor
(one row per image) and, in its metadata, the images' content hashes in row order. New images are
computed in batches and written as a new shard, so an interrupted run loses at most one batch, and a
10,000-image haystack on a warm store costs one in-memory gather.
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from vhs.paths import atomic_path, data_root
from vhs.protocol import ImageRef

BATCH = 512  # images computed and written as one shard


class FeatureStore:
    """`of(images)` -> stacked rows, computing (with `compute`, images -> rows) only unseen images."""

    def __init__(self, directory: Path, compute: Callable[[Sequence[ImageRef]], torch.Tensor]) -> None:
        self.directory = Path(directory)
        self._compute = compute
        self.rows: dict[str, int] = {}
        self.computed = 0  # images computed by this instance (the rest were cache hits)
        blocks = []
        for shard in sorted(self.directory.glob("shard-*.safetensors")):
            with safe_open(shard, "pt") as handle:
                hashes = json.loads(handle.metadata()["sha256"])
                blocks.append(handle.get_tensor("values"))
            self._index(hashes)
        self.table = torch.cat(blocks) if blocks else None

    def of(self, images: Sequence[ImageRef]) -> torch.Tensor:
        """(len(images), ...) rows in the given order."""
        missing = list({i.sha256: i for i in images if i.sha256 not in self.rows}.values())
        starts = range(0, len(missing), BATCH)
        for start in tqdm(starts, desc="encode images", unit="batch", leave=False, disable=len(starts) < 4):
            self._add(missing[start : start + BATCH])
        return self.table[torch.tensor([self.rows[i.sha256] for i in images], dtype=torch.long)]

    def _index(self, hashes: list[str]) -> None:
        start = len(self.rows)
        self.rows.update({sha: start + i for i, sha in enumerate(hashes)})

    def _add(self, images: list[ImageRef]) -> None:
        with torch.no_grad():
            values = self._compute(images).contiguous()
        self.directory.mkdir(parents=True, exist_ok=True)
        shard = self.directory / f"shard-{len(list(self.directory.glob('shard-*.safetensors'))):05d}.safetensors"
        with atomic_path(shard) as partial:
            save_file({"values": values}, partial, metadata={"sha256": json.dumps([i.sha256 for i in images])})
        self._index([i.sha256 for i in images])
        self.table = values if self.table is None else torch.cat([self.table, values])
        self.computed += len(images)


def model_store(kind: str, model_id: str, revision: str, dtype: str, store: str, compute: Callable) -> FeatureStore:
    """The feature store of a downloaded model's per-image tensors: `store` if given, else
    `$VHS_DATA/cache/<kind>/<digest of the model, its weights revision and dtype>`."""
    digest = hashlib.sha256(f"{model_id}\n{revision}\n{dtype}".encode()).hexdigest()[:16]
    return FeatureStore(Path(store) if store else data_root() / "cache" / kind / digest, compute)
