"""VHs-style training questions built from the training split, by the benchmark's own builder."""

import numpy as np

from vhs.data.catalog import Catalog
from vhs.data.questions import build_questions


def training_questions(catalog: Catalog, sizes: tuple[int, ...], per_size: int, seed: int, multi: bool = True) -> list[dict]:
    """Single-needle questions at each size, plus multi-needle ones where a size holds 2+ needles, shuffled.

    `per_size` is rounded up to an even number (questions come in yes/no pairs).
    """
    per_size += per_size % 2
    questions = []
    for size in sizes:
        questions += list(build_questions(catalog, "single", size, per_size, seed))
        if multi and size >= 2:
            questions += list(
                build_questions(catalog, "multi", size, per_size, seed, needle_counts=tuple(n for n in (2, 3) if n <= size))
            )
    order = np.random.default_rng(seed).permutation(len(questions))
    return [questions[i] for i in order]


def in_size_runs(questions: list[dict], batch: int, seed: int) -> list[dict]:
    """`questions` reordered into runs of `batch` that share one haystack size, the runs shuffled (a
    size's last incomplete run dropped): a training batch read in order pads no row to a larger
    haystack's length (mixed batches are padded to their largest haystack nearly every time)."""
    runs = []
    for size in sorted({q["size"] for q in questions}):
        same = [q for q in questions if q["size"] == size]
        runs += [same[start : start + batch] for start in range(0, len(same) - batch + 1, batch)]
    return [q for run in np.random.default_rng(seed).permutation(len(runs)) for q in runs[run]]
