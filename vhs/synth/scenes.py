"""Render synthetic scenes and write them as a COCO-format data set (`vhs synth`).

A scene is a cluttered background (a brightness gradient, pixel noise, stray lines and blobs in
muted tones) with 0-6 objects of the vocabulary at varied sizes, rotations and tones, drawn in
order so later objects occlude earlier ones. Each annotation's `area` and `bbox` count the
object's *visible* pixels, as COCO's do; `segmentation` is its full outline polygon. An object
left with no visible pixel is not annotated.

Every image is drawn from its own random stream, seeded by (seed, image index), so the output is
the same whatever the number of worker processes.
"""

import json
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vhs.errors import VhsError
from vhs.paths import write_atomically
from vhs.synth import vocab
from vhs.synth.png import encode_palette_png
from vhs.synth.raster import fill_polygon

MAX_OBJECTS = 6
FORMAT_VERSION = 1
_CHUNK = 256  # images per worker task (and per step of the progress bar)


@dataclass(frozen=True)
class SceneObject:
    """One placed object before rendering."""

    category: vocab.Category
    cx: float
    cy: float
    radius: float
    rotation: int
    tone: int


def _draw_background(rng: np.random.Generator, size: int) -> np.ndarray:
    family = int(rng.integers(vocab.NUM_BACKGROUND_FAMILIES))
    low = int(rng.integers(1, 5))
    span = int(rng.integers(2, 5))
    direction = rng.random(2) * 2 - 1
    coords = (np.arange(size, dtype=np.float64) + 0.5) / size
    ramp = direction[0] * coords[None, :] + direction[1] * coords[:, None]
    ramp = (ramp - ramp.min()) / max(ramp.max() - ramp.min(), 1e-9)
    levels = low + np.floor(ramp * span).astype(np.int64)
    levels += (rng.random((size, size)) < 0.12).astype(np.int64) * rng.choice([-1, 1], (size, size))
    levels = np.clip(levels, 0, vocab.BACKGROUND_LEVELS - 1)
    return (vocab.background_index(family, 0) + levels).astype(np.uint8)


def _draw_clutter(rng: np.random.Generator, canvas: np.ndarray) -> None:
    size = canvas.shape[0]
    for _ in range(int(rng.integers(6, 16))):
        colour = vocab.background_index(
            int(rng.integers(vocab.NUM_BACKGROUND_FAMILIES)), int(rng.integers(vocab.BACKGROUND_LEVELS))
        )
        x, y = (rng.random(2) * size).tolist()
        if rng.random() < 0.5:  # a stray line: a thin quadrilateral
            dx, dy = ((rng.random(2) * 2 - 1) * size * 0.4).tolist()
            w = 0.5 + rng.random() * size / 64
            points = [(x, y), (x + dx, y + dy), (x + dx + w, y + dy + w), (x + w, y + w)]
        else:  # a blob: a stretched 24-gon
            radius = (1.5 + rng.random() * 4.0) * size / 64
            points = vocab.outline("circle", x, y, radius, 0, stretch=0.4 + rng.random())
        fill_polygon(canvas, points, colour)


def _place_objects(rng: np.random.Generator, size: int, cats: list[vocab.Category]) -> list[SceneObject]:
    placed = []
    for _ in range(int(rng.integers(0, MAX_OBJECTS + 1))):
        radius = (5.5 + rng.random() * 6.5) * size / 64
        cx, cy = (radius * 0.7 + rng.random(2) * (size - 1.4 * radius)).tolist()
        placed.append(
            SceneObject(
                category=cats[int(rng.integers(len(cats)))],
                cx=cx,
                cy=cy,
                radius=radius,
                rotation=int(rng.integers(vocab.ANGLE_STEPS)),
                tone=int(rng.integers(vocab.TONES_PER_COLOUR)),
            )
        )
    return placed


def render_scene(seed: int, index: int, size: int) -> tuple[np.ndarray, list[dict]]:
    """Draw scene `index` of the data set seeded by `seed`.

    Returns the (size, size) palette-index image and its annotations (without ids), one dict per
    visible object with `category_id`, `bbox`, `area`, `segmentation` and `iscrowd`.
    """
    rng = np.random.default_rng([seed, index])
    cats = vocab.categories()
    canvas = _draw_background(rng, size)
    _draw_clutter(rng, canvas)
    labels = np.zeros((size, size), dtype=np.uint8)
    objects = _place_objects(rng, size, cats)
    outlines = []
    for number, obj in enumerate(objects, start=1):
        points = vocab.outline(obj.category.shape, obj.cx, obj.cy, obj.radius, obj.rotation)
        outlines.append(points)
        fill_polygon(canvas, points, vocab.object_colour_index(obj.category.colour, obj.tone), labels, number)
    annotations = []
    for number, (obj, points) in enumerate(zip(objects, outlines), start=1):
        ys, xs = np.nonzero(labels == number)
        if len(xs) == 0:
            continue
        x0, y0 = int(xs.min()), int(ys.min())
        annotations.append(
            {
                "category_id": obj.category.id,
                "bbox": [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0],
                "area": len(xs),
                "segmentation": [[coord for point in points for coord in point]],
                "iscrowd": 0,
            }
        )
    return canvas, annotations


def _render_chunk(task: tuple[str, int, int, int, int]) -> list[tuple[int, list[dict]]]:
    image_dir, seed, size, start, stop = task
    pal = vocab.palette()
    results = []
    for index in range(start, stop):
        pixels, annotations = render_scene(seed, index, size)
        Path(image_dir, image_file_name(index)).write_bytes(encode_palette_png(pixels, pal))
        results.append((index, annotations))
    return results


def image_file_name(index: int) -> str:
    """File name of scene `index` (image id `index + 1`) inside `images/`."""
    return f"{index + 1:06d}.png"


def write_synth_dataset(out: Path, images: int, seed: int, size: int = 64, workers: int | None = None) -> Path:
    """Write `images` scenes to `out/images/*.png` and `out/annotations.json`; return the json path.

    The annotation file is written last, through a temporary name, so its presence marks a
    complete data set.
    """
    if images < 1:
        raise VhsError(f"--images must be at least 1, got {images}")
    if size < 16:
        raise VhsError(f"--size must be at least 16 pixels, got {size}")
    image_dir = Path(out) / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    workers = workers or min(os.cpu_count() or 1, 8)
    tasks = [(str(image_dir), seed, size, start, min(start + _CHUNK, images)) for start in range(0, images, _CHUNK)]
    per_image: list[list[dict]] = [[] for _ in range(images)]
    with ProcessPoolExecutor(max_workers=workers) if workers > 1 else nullcontext() as pool:
        chunks = pool.map(_render_chunk, tasks) if pool else map(_render_chunk, tasks)
        for chunk in tqdm(chunks, total=len(tasks), desc="synth scenes", unit="chunk"):
            for index, annotations in chunk:
                per_image[index] = annotations
    dataset = _coco_document(per_image, seed, size)
    target = Path(out) / "annotations.json"
    write_atomically(target, json.dumps(dataset, sort_keys=True, separators=(",", ":")).encode())
    return target


def _coco_document(per_image: list[list[dict]], seed: int, size: int) -> dict:
    annotations = []
    for index, objects in enumerate(per_image):
        for obj in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, **obj})
    return {
        "info": {
            "description": "vhs synthetic scenes",
            "version": FORMAT_VERSION,
            "seed": seed,
            "image_size": size,
        },
        "licenses": [],
        "images": [
            {"id": index + 1, "file_name": image_file_name(index), "width": size, "height": size}
            for index in range(len(per_image))
        ],
        "annotations": annotations,
        "categories": [{"id": c.id, "name": c.name, "supercategory": c.shape} for c in vocab.categories()],
    }
