"""Throughput of the runner with a fake backend that takes 50 ms per call, and of a cached re-run.

.venv/bin/python benchmarks/bench_eval.py [--questions 200] [--size 10]
"""

import argparse
import tempfile
import time
from pathlib import Path

from vhs.cache import ResponseCache
from vhs.data.profiles import load_profile_catalog
from vhs.data.questions import build_question_set
from vhs.eval.runner import RunOptions, run_backend
from vhs.models.base import Backend
from vhs.protocol import Reply, Request
from vhs.synth.scenes import write_synth_dataset


class SlowBackend(Backend):
    """Replies "Yes" after `latency` seconds, like a remote API."""

    name = "slow"

    def __init__(self, latency: float) -> None:
        super().__init__("fake", latency=latency)
        self.latency = latency

    def generate(self, request: Request) -> Reply:
        time.sleep(self.latency)
        return Reply(text="Yes")


def timed(backend: Backend, questions: list[dict], cache: ResponseCache, concurrency: int, data: Path) -> float:
    """Seconds to run every question."""
    start = time.perf_counter()
    run_backend(backend, questions, cache, RunOptions(concurrency=concurrency, data=data))
    return time.perf_counter() - start


def main() -> None:
    """Print questions/s at concurrency 1, 8, 32 (cold cache) and for a fully cached re-run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--size", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "synth"
        write_synth_dataset(data, 1000, seed=0)
        catalog = load_profile_catalog("synth", data)
        questions = list(build_question_set(catalog, "single", (args.size,), args.questions, 0, progress=False))
        print(f"{args.questions} questions of {args.size} images, fake backend {args.latency * 1000:.0f} ms per call")
        print(f"{'run':>24} {'seconds':>8} {'questions/s':>12}")
        cold = {}
        for concurrency in (1, 8, 32):
            cache = ResponseCache(Path(tmp) / f"cache-{concurrency}.sqlite")
            cold[concurrency] = timed(SlowBackend(args.latency), questions, cache, concurrency, data)
            print(f"{f'concurrency {concurrency}':>24} {cold[concurrency]:>8.2f} {args.questions / cold[concurrency]:>12.1f}")
        cached = timed(SlowBackend(args.latency), questions, ResponseCache(Path(tmp) / "cache-1.sqlite"), 1, data)
        print(f"{'cached re-run':>24} {cached:>8.2f} {args.questions / cached:>12.1f}")
        print(
            f"cached re-run is {cold[1] / cached:.0f}x faster than the cold run at concurrency 1,"
            f" {cold[32] / cached:.1f}x than at 32"
        )


if __name__ == "__main__":
    main()
