"""Seconds per question of `mirage:DIR` against haystack size, on warm feature caches, and peak memory.

    .venv/bin/python benchmarks/bench_mirage.py [--model runs/mirage] [--sizes 1,10,100,1000,10000] [--questions 6]

Questions are single-needle VHs questions on the synth evaluation split. Every image the questions use
is put in the feature store first (timed apart, as the cold cost); then each question is answered with
the store warm: one gather of the cached tokens, the retriever in chunks of 256, the LM over the kept image.
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
from vhs.models.mirage import MirageBackend


def main() -> None:
    """Print one row per haystack size: seconds per question, LM tokens, images kept; then peak RSS."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/mirage")
    parser.add_argument("--sizes", default="1,10,100,1000,10000")
    parser.add_argument("--questions", type=int, default=6, help="questions timed per size (even: yes/no pairs)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    catalog = load_profile_catalog("synth")
    questions = list(qs.build_question_set(catalog, "single", sizes, args.questions, 0, progress=False))
    with tempfile.TemporaryDirectory() as scratch:
        backend = MirageBackend(args.model, store=f"{scratch}/store")
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
            seconds = (time.perf_counter() - start) / len(batch)
            print(f"{size:>6} {seconds:>11.3f} {replies[0].input_tokens:>10} {len(replies[0].kept):>5}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")


if __name__ == "__main__":
    main()
