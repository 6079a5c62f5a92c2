"""Seconds per question and peak memory of the `hf` backend at haystack sizes 1, 2, 3.

    .venv/bin/python benchmarks/bench_hf.py --model PATH            # a saved model
    .venv/bin/python benchmarks/bench_hf.py --config tiny           # random weights, built here
    .venv/bin/python benchmarks/bench_hf.py --config llava-1.5-7b --dtype bfloat16   # on a GPU box

`--config` writes a randomly initialised model of that configuration to a temporary directory, so the
paper's LLaVA-1.5-7B can be timed with nothing downloaded. Images are 640x480 (COCO-like) noise.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vhs.models.hf import HFBackend
from vhs.models.hf_random import LLAVA_15_7B, TINY, write_llava
from vhs.protocol import ImageRef, Request

CONFIGS = {"tiny": TINY, "llava-1.5-7b": LLAVA_15_7B}
PROMPT = (
    "You are given a set of images. Please answer the following question in Yes or No: For the image with a dog, is there a cat?"
)


def peak_memory_gib(device: str) -> float:
    """Peak GPU memory on CUDA, else the process's peak resident memory, in GiB."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    """Print one row per haystack size: seconds per question (mean of `--repeats`), tokens, peak memory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a model directory or hub name (must be available locally)")
    source.add_argument("--config", choices=sorted(CONFIGS))
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if args.config:
            dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(args.dtype, torch.float32)
            model = str(write_llava(Path(tmp) / args.config, CONFIGS[args.config], dtype=dtype))
        backend = HFBackend(model, dtype=args.dtype, device=args.device, max_new_tokens="1", context="100000")
        rng = np.random.default_rng(0)
        images = []
        for i in range(3):
            path = Path(tmp) / f"{i}.jpg"
            Image.fromarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(path)
            images.append(ImageRef(i, path, str(i), path.stat().st_size))
        print(f"model {args.config or model} on {backend.device} ({backend.params['dtype']})")
        print(f"{'images':>6} {'tokens':>7} {'s/question':>11} {'peak GiB':>9}")
        for size in (1, 2, 3):
            request = Request(PROMPT, tuple(images[:size]))
            backend.generate(request)  # warm-up
            if backend.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.repeats):
                backend.generate(request)
            if backend.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / args.repeats
            print(f"{size:>6} {backend.prompt_tokens(request):>7} {seconds:>11.3f} {peak_memory_gib(backend.device):>9.2f}")


if __name__ == "__main__":
    main()
