"""Time and peak memory to build 1,000 VHs questions at each size from a COCO-scale annotation file.

Generates a synthetic annotation file the size of COCO train2017 + val2017 (123,287 images,
~900,000 objects, 80 categories with COCO-like skew), loads it through the same loader as the
real data, then builds and writes `--per-size` single-needle questions at each size.

    .venv/bin/python benchmarks/bench_questions.py [--images 123287] [--per-size 1000]
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from vhs.data import questions as qs
from vhs.data.catalog import AnnotationSource, load_catalog


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def coco_scale_annotations(path: Path, images: int, objects_per_image: float, seed: int = 0) -> int:
    """Write a COCO-format file with `images` 640x480 images; return the number of objects."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, 81) ** 0.9
    counts = rng.poisson(objects_per_image, images)
    total = int(counts.sum())
    image_of = np.repeat(np.arange(1, images + 1), counts)
    cats = rng.choice(80, total, p=weights / weights.sum()) + 1
    areas = np.exp(rng.uniform(np.log(0.0005), np.log(0.6), total)) * 640 * 480
    crowd = rng.random(total) < 0.01
    doc = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480} for i in range(1, images + 1)],
        "annotations": [
            {
                "id": k + 1,
                "image_id": int(image_of[k]),
                "category_id": int(cats[k]),
                "area": round(float(areas[k]), 1),
                "iscrowd": int(crowd[k]),
                "bbox": [0, 0, 1, 1],
                "segmentation": [[0, 0, 1, 0, 1, 1]],
            }
            for k in range(total)
        ],
        "categories": [{"id": c, "name": f"category {c}", "supercategory": "thing"} for c in range(1, 81)],
    }
    path.write_text(json.dumps(doc))
    return total


def main() -> None:
    """Generate, load, build; print one table row per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=123_287)
    parser.add_argument("--objects-per-image", type=float, default=7.3)
    parser.add_argument("--per-size", type=int, default=1000)
    parser.add_argument("--sizes", default="1,2,3,5,10,20,50,100,500,1000,10000")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ann = Path(tmp) / "instances.json"
        start = time.perf_counter()
        objects = coco_scale_annotations(ann, args.images, args.objects_per_image)
        print(
            f"generated {args.images:,} images, {objects:,} objects ({ann.stat().st_size / 2**20:.0f} MiB)"
            f" in {time.perf_counter() - start:.1f} s"
        )
        start = time.perf_counter()
        catalog = load_catalog([AnnotationSource(ann, Path(tmp))], Path(tmp), "coco-scale")
        print(f"load: {time.perf_counter() - start:.1f} s, peak RSS {peak_rss_mb():.0f} MiB")
        print(f"{'size':>6} {'questions':>9} {'seconds':>8} {'q/s':>8} {'file MiB':>9} {'peak RSS MiB':>13}")
        for size in (int(s) for s in args.sizes.split(",")):
            out = Path(tmp) / f"q{size}.jsonl"
            start = time.perf_counter()
            written = qs.write_jsonl(qs.build_questions(catalog, "single", size, args.per_size, seed=0), out)
            seconds = time.perf_counter() - start
            print(
                f"{size:>6} {written:>9} {seconds:>8.2f} {written / seconds:>8.0f} {out.stat().st_size / 2**20:>9.1f}"
                f" {peak_rss_mb():>13.0f}"
            )
            out.unlink()


if __name__ == "__main__":
    main()
