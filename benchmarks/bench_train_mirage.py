"""Seconds and peak memory of the coco MIRAGE's training (`vhs train mirage --profile coco`) on random weights.

    .venv/bin/python benchmarks/bench_train_mirage.py --config tiny                # CPU, seconds
    .venv/bin/python benchmarks/bench_train_mirage.py --config coco --steps 20     # on a GPU box

`--config coco` writes a random CLIP ViT-L/14-336 and a random Llama of Qwen2.5-0.5B-Instruct's width,
depth and vocabulary (the default LM; a Llama stands in for Qwen2 here) to a temporary folder, nothing
downloaded; `tiny` uses the tests' sizes. Training images are the synth evaluation split's first `--images`.
It prints the whole run's seconds (CLIP features of every image, then the three stages) and peak memory.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch

from vhs.data.profiles import load_profile_catalog
from vhs.mirage.hub import HubMirageConfig
from vhs.mirage.train import train_hub_mirage
from vhs.models.hf_random import MIRAGE_8B, TINY, Sizes, write_clip_vision, write_text_lm

# (CLIP sizes, LM sizes, the parts trained here): the coco MIRAGE's defaults, or the tests' tiny ones.
CONFIGS = {
    "tiny": (TINY, Sizes(**{**TINY.__dict__, "context": 512}), {"queries": 4, "qformer_layers": 2, "qformer_heads": 2}),
    "coco": (MIRAGE_8B, Sizes(896, 24, 14, 151936, 4096), {}),
}


def main() -> None:
    """Train for `--steps` steps and print seconds and peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="tiny")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    vision_sizes, lm_sizes, parts = CONFIGS[args.config]
    catalog = load_profile_catalog("synth")
    with tempfile.TemporaryDirectory() as scratch:
        vision = write_clip_vision(Path(scratch) / "clip", vision_sizes)
        lm = write_text_lm(Path(scratch) / "lm", lm_sizes)
        config = HubMirageConfig(vision=str(vision), lm=str(lm), **parts)
        start = time.perf_counter()
        model, curves = train_hub_mirage(catalog, args.steps, 0, config, device=args.device, images=args.images)
        seconds = time.perf_counter() - start
    device = str(next(model.parameters()).device)
    print(f"{args.config} on {device}: {args.images} images, {args.steps} steps in {seconds:.1f} s")
    losses = {stage: curve[-1] for stage, curve in curves.items() if curve and stage in ("captions", "retrieval", "cotrain")}
    print("final losses: " + ", ".join(f"{stage} {loss:.3f}" for stage, loss in losses.items()))
    if device.startswith("cuda"):
        print(f"peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
