"""Seconds per question of MIRAGE against haystack size, on warm feature caches, and peak memory.

    .venv/bin/python benchmarks/bench_mirage.py [--model runs/mirage] [--sizes 1,10,100,1000,10000] [--questions 6]
    .venv/bin/python benchmarks/bench_mirage.py --config mirage-official --sizes 1,100,1000,10000   # on a GPU box

`--model` times `mirage:DIR`, trained here. `--config` times `mirage-official` on random weights in the
released checkpoint's layout, written to a temporary folder first (nothing downloaded): `mirage-official`
at the released sizes (Llama-3.1-8B, CLIP ViT-L/14-336, the official Q-Former and retriever; about 18 GB
in float16), `tiny` at test sizes. Questions are single-needle VHs questions on the synth evaluation
split. Every image the questions use is put in the feature store first (timed apart, as the cold cost);
then each question is answered with the store warm: one gather of the cached tokens, the retriever in
chunks, the LM over the kept images.
"""

import argparse
import resource
import tempfile
import time

import torch

from vhs.cache import ResponseCache
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.eval.runner import HaystackImages
from vhs.models.base import Backend
from vhs.models.hf_random import MIRAGE_8B, MIRAGE_8B_CONFIG, TINY, write_clip_vision, write_official_mirage
from vhs.models.mirage import MirageBackend
from vhs.models.mirage_official import OfficialMirageBackend

# Random checkpoints in the released layout: (sizes, config keys over them; None: Q-Former and retriever scaled down).
CONFIGS = {"tiny": (TINY, None), "mirage-official": (MIRAGE_8B, MIRAGE_8B_CONFIG)}


def official_backend(config: str, scratch: str, device: str) -> OfficialMirageBackend:
    """`mirage-official` on a random checkpoint of `config`, written under `scratch` in float16 (float32 on the CPU)."""
    sizes, keys = CONFIGS[config]
    dtype = torch.float16 if torch.cuda.is_available() and device != "cpu" else torch.float32
    vision = write_clip_vision(f"{scratch}/clip", sizes)
    checkpoint = write_official_mirage(f"{scratch}/mirage", vision, sizes, keys, dtype=dtype)
    dtype_name = str(dtype).removeprefix("torch.")
    return OfficialMirageBackend(str(checkpoint), store=f"{scratch}/store", device=device, dtype=dtype_name)


def peak_memory(backend: Backend) -> str:
    """The run's peak memory: the GPU's where the model is on one, and the process's resident set."""
    rss = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    model = getattr(backend, "model", None)
    if str(getattr(model, "device", "cpu")).startswith("cuda"):
        return f"peak GPU {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, {rss}"
    return rss


def main() -> None:
    """Print one row per haystack size: seconds per question, LM tokens, images kept; then peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", default="runs/mirage", help="a MIRAGE trained here")
    source.add_argument("--config", choices=sorted(CONFIGS), help="the released MIRAGE's layout, random weights")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="1,10,100,1000,10000")
    parser.add_argument("--questions", type=int, default=6, help="questions timed per size (even: yes/no pairs)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    catalog = load_profile_catalog("synth")
    questions = list(qs.build_question_set(catalog, "single", sizes, args.questions, 0, progress=False))
    with tempfile.TemporaryDirectory() as scratch:
        if args.config:
            backend = official_backend(args.config, scratch, args.device)
        else:
            backend = MirageBackend(args.model, store=f"{scratch}/store", device=args.device)
        print(f"{args.config or args.model}: {backend.identity()}")
        images = HaystackImages(ResponseCache(f"{scratch}/cache.sqlite"), None)
        requests = [images.request(q) for q in questions]
        start = time.perf_counter()
        backend.store.of(tuple({ref.sha256: ref for r in requests for ref in r.images}.values()))
        print(f"cold: {backend.store.computed} images into the store in {time.perf_counter() - start:.1f} s")
        print(f"{'N':>6} {'s/question':>11} {'LM tokens':>10} {'kept':>5}")
        for size in sizes:
            batch = [r for r, q in zip(requests, questions, strict=True) if q["size"] == size]
            start = time.perf_counter()
            replies = [backend.generate(r) for r in batch]
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            seconds = (time.perf_counter() - start) / len(batch)
            print(f"{size:>6} {seconds:>11.3f} {replies[0].input_tokens:>10} {len(replies[0].kept):>5}")
        print(peak_memory(backend))


if __name__ == "__main__":
    main()
