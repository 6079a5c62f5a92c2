"""Tiny hand-written COCO annotation files for tests of the loader rules."""

import json
from pathlib import Path

CATEGORIES = [
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
    {"id": 53, "name": "apple", "supercategory": "food"},
]


def annotation(ann_id: int, image_id: int, category_id: int, area: float, iscrowd: int = 0) -> dict:
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": category_id,
        "area": area,
        "iscrowd": iscrowd,
        "bbox": [0, 0, 10, 10],
        "segmentation": [[0, 0, 10, 0, 10, 10]] if not iscrowd else {"counts": [100], "size": [100, 100]},
    }


def write_coco(path: Path, images: list[int], annotations: list[dict], prefix: str = "") -> Path:
    """Write a COCO file of 100x100 images named like COCO's (`000000000042.jpg`)."""
    doc = {
        "images": [{"id": i, "file_name": f"{prefix}{i:012d}.jpg", "width": 100, "height": 100} for i in images],
        "annotations": annotations,
        "categories": CATEGORIES,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def write_coco_dataset(root: Path, images: int, seed: int = 0) -> Path:
    """A COCO 2017-shaped directory (`annotations/instances_val2017.json` + `val2017/*.jpg`) of
    `images` random 100x100 JPEGs, each holding each category with probability 1/2 at 5% of its area."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    ids = list(range(1, images + 1))
    annotations = []
    for image_id in ids:
        for category in CATEGORIES:
            if rng.random() < 0.5:
                annotations.append(annotation(len(annotations) + 1, image_id, category["id"], area=500))
        folder = root / "val2017"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (100, 100, 3), dtype=np.uint8)).save(folder / f"{image_id:012d}.jpg")
    return write_coco(root / "annotations" / "instances_val2017.json", ids, annotations)
