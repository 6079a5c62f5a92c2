"""Build VHs question sets from a Catalog, exactly as `shared/spec/README.md` §1-2 describes.

Construction, for one (mode, size) with its own random stream seeded by (seed, mode, size):
- Questions come in yes/no *pairs* sharing anchor and target, so every pair used in a `yes`
  question is used in a `no` question of the same size and mode (no prior over pairs beats 50%).
- Anchors cycle through a seeded permutation of the categories (spread as evenly as the data
  allows); the target is drawn uniformly among categories that make both answers possible.
- Needles contain the anchor; distractors are drawn uniformly from images where the anchor is
  absent (they may contain the target); images ambiguous for the anchor or target are never used.
- Multi-needle pairs cycle through (needle count, kind) = (2, all), (2, any), (3, all),
  (3, any). The number of needles holding the target is drawn uniformly among the values the
  kind allows for the answer (`vhs.data.kinds`).
- The presentation order is a seeded permutation; needle positions are recorded.
Only ids are held, so memory stays bounded at 10,000 images x 1,000 questions.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vhs.data.catalog import ABSENT, AMBIGUOUS, PRESENT, Catalog
from vhs.data.kinds import Kind, kind_of, kinds_of, modes
from vhs.errors import VhsError
from vhs.paths import atomic_path

MODES = modes()
SINGLE_SIZES = (1, 2, 3, 5, 10, 20, 50, 100, 500, 1000, 10000)
MULTI_SIZES = (5, 10, 20, 50, 100, 500, 1000, 10000)
DEFAULT_NEEDLE_COUNTS = (2, 3)
PROMPT_PREFIX = "You are given a set of images. Please answer the following question in Yes or No: "
NEEDLES_ONLY = "needles only"  # the haystack setting of `needles_only`: no distractors, reported as its own mode
_MODE_CODE = {"single": 1, "multi": 2}  # the seed stream of each question set
# The fields a question record must hold for a run (the rest of the record is description).
RECORD_FIELDS = ("qid", "mode", "size", "num_needles", "question", "answer", "image_ids", "needle_ids", "needle_positions")


@dataclass(frozen=True)
class _Pools:
    """Boolean rows of one catalog, category-major (a category's images are contiguous), computed once per build."""

    present: np.ndarray  # (categories, images)
    absent: np.ndarray
    usable: np.ndarray  # not ambiguous
    _rows: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, catalog: Catalog) -> "_Pools":
        state = catalog.state.T
        return cls(
            np.ascontiguousarray(state == PRESENT),
            np.ascontiguousarray(state == ABSENT),
            np.ascontiguousarray(state != AMBIGUOUS),
        )

    def counts(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """(C, C) matrix: number of images with left[a] and right[t]. Exact in float32 below 2**24."""
        return np.rint(left.astype(np.float32) @ right.T.astype(np.float32)).astype(np.int64)

    def rows(self, anchor: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of needles holding the target, of needles lacking it, and of eligible distractors
        for one (anchor, target) pair, computed once per pair (a set has thousands of pairs' questions
        but at most C * (C - 1) distinct pairs)."""
        if (anchor, target) not in self._rows:
            has_anchor = self.present[anchor] & self.usable[target]
            self._rows[anchor, target] = (
                np.flatnonzero(has_anchor & self.present[target]),
                np.flatnonzero(has_anchor & self.absent[target]),
                np.flatnonzero(self.absent[anchor] & self.usable[target]),
            )
        return self._rows[anchor, target]


@dataclass(frozen=True)
class _Feasibility:
    """Per (anchor, target) counts that decide which pairs a size can use."""

    with_target: np.ndarray  # needles holding the target: present[a] & present[t]
    without_target: np.ndarray  # needles lacking it: present[a] & absent[t]
    distractors: np.ndarray  # absent[a] & usable[t]

    @classmethod
    def of(cls, pools: _Pools) -> "_Feasibility":
        return cls(
            pools.counts(pools.present, pools.present),
            pools.counts(pools.present, pools.absent),
            pools.counts(pools.absent, pools.usable),
        )

    def allowed(self, needles: int, kind: Kind, distractors: int) -> np.ndarray:
        """Boolean (C, C): pairs for which both the yes and the no question of `kind` can be built."""
        ok = self._some_count(needles, kind.yes_counts(needles)) & self._some_count(needles, kind.no_counts(needles))
        ok &= self.distractors >= distractors
        np.fill_diagonal(ok, False)
        return ok

    def _some_count(self, needles: int, counts: tuple[int, ...]) -> np.ndarray:
        """Pairs with enough needles holding and lacking the target for at least one of `counts` holders."""
        ok = np.zeros_like(self.with_target, dtype=bool)
        for k in counts:
            ok |= (self.with_target >= k) & (self.without_target >= needles - k)
        return ok


def _needle_plans(mode: str, size: int, needle_counts: tuple[int, ...]) -> list[tuple[int, Kind]]:
    if mode == "single":
        return [(1, kind) for kind in kinds_of(mode)]
    plans = [(n, kind) for n in needle_counts for kind in kinds_of(mode) if n <= size]
    if not plans:
        raise VhsError(f"multi-needle haystacks of size {size} cannot hold {min(needle_counts)} needles")
    return plans


def _with_target_count(rng: np.random.Generator, needles: int, kind: Kind, answer: str, y: int, n: int) -> int:
    """How many of the needles hold the target, uniform over what the kind, the answer and the pools allow."""
    choices = [k for k in (kind.yes_counts if answer == "yes" else kind.no_counts)(needles) if k <= y and needles - k <= n]
    return int(rng.choice(choices))


def validate_request(mode: str, sizes: tuple[int, ...], per_size: int) -> None:
    """Reject a mode, size list or per-size count that cannot make a balanced set."""
    if mode not in MODES:
        raise VhsError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if not sizes or min(sizes) < 1:
        raise VhsError(f"haystack sizes must be at least 1, got {list(sizes)}")
    if per_size < 2 or per_size % 2:
        raise VhsError(f"--per-size must be a positive even number (questions come in yes/no pairs), got {per_size}")


def build_questions(
    catalog: Catalog,
    mode: str,
    size: int,
    per_size: int,
    seed: int,
    needle_counts: tuple[int, ...] = DEFAULT_NEEDLE_COUNTS,
) -> Iterator[dict]:
    """The `per_size` questions (yes/no pairs) of one haystack size, deterministic from `seed`; built lazily."""
    validate_request(mode, (size,), per_size)
    pools = _Pools.of(catalog)
    return _questions_for_size(catalog, pools, _Feasibility.of(pools), mode, size, per_size, seed, needle_counts)


def _questions_for_size(
    catalog: Catalog,
    pools: _Pools,
    feasible: _Feasibility,
    mode: str,
    size: int,
    per_size: int,
    seed: int,
    needle_counts: tuple[int, ...],
) -> Iterator[dict]:
    plans = _needle_plans(mode, size, needle_counts)
    allowed = {plan: feasible.allowed(plan[0], plan[1], size - plan[0]) for plan in plans}
    for plan, ok in allowed.items():
        if not ok.any():
            most = int(feasible.distractors.max(initial=0))
            raise VhsError(
                f"haystack size {size} needs {size - plan[0]} distractors but data set {catalog.name!r} "
                f"has at most {most} eligible distractor images for any anchor/target pair"
            )
    rng = np.random.default_rng([seed, _MODE_CODE[mode], size])
    anchor_order = rng.permutation(len(catalog.category_names))
    names = catalog.category_names
    cursor = 0
    for pair in range(per_size // 2):
        needles, kind = plans[pair % len(plans)]
        ok = allowed[(needles, kind)]
        while not ok[anchor_order[cursor % len(anchor_order)]].any():
            cursor += 1
        anchor = int(anchor_order[cursor % len(anchor_order)])
        cursor += 1
        target = int(rng.choice(np.flatnonzero(ok[anchor])))
        holds, lacks, distractor_pool = pools.rows(anchor, target)
        for answer in ("yes", "no"):
            k = _with_target_count(rng, needles, kind, answer, len(holds), len(lacks))
            needle_rows = np.concatenate([rng.choice(holds, k, replace=False), rng.choice(lacks, needles - k, replace=False)])
            distractor_rows = rng.choice(distractor_pool, size - needles, replace=False)
            order = rng.permutation(size)
            rows = np.concatenate([needle_rows, distractor_rows])[order]
            positions = np.flatnonzero(order < needles)  # needles come first before the shuffle
            distractor_has_target = pools.present[target, distractor_rows]
            yield _checked(
                catalog,
                {
                    "qid": f"{mode}-{size}-{2 * pair + (answer == 'no'):04d}",
                    "mode": mode,
                    "quantifier": None if kind.mode == "single" else kind.name,
                    "size": size,
                    "num_needles": needles,
                    "question": kind.text(names[anchor], names[target]),
                    "anchor": names[anchor],
                    "target": names[target],
                    "answer": answer,
                    "image_ids": catalog.image_ids[rows].tolist(),
                    "needle_ids": catalog.image_ids[rows[positions]].tolist(),
                    "needle_positions": positions.tolist(),
                    "distractor_target_frac": round(float(distractor_has_target.mean()), 6) if len(distractor_rows) else 0.0,
                    "dataset": catalog.name,
                    "seed": seed,
                },
            )


def _checked(catalog: Catalog, question: dict) -> dict:
    """The question, once `check_question` finds nothing wrong with it: every built question is checked
    against the annotations it was built from, whoever builds it (the CLI, a notebook, a trainer)."""
    problems = check_question(catalog, question)
    if problems:
        raise VhsError(f"question check failed: {problems[0]}")
    return question


def needles_only(catalog: Catalog, counts: tuple[int, ...], per_size: int, seed: int) -> list[dict]:
    """The paper's needles-only setting: haystacks that are their needles alone, for each needle count in
    `counts` (one needle: the single-needle question of one image; more: the multi-needle kinds), with
    `mode` set to `NEEDLES_ONLY` so they are reported apart from haystacks with distractors."""
    questions = []
    for n in counts:
        mode = "single" if n == 1 else "multi"
        built = build_question_set(catalog, mode, (n,), per_size, seed, needle_counts=(n,), progress=False)
        questions += [{**q, "mode": NEEDLES_ONLY} for q in built]
    return questions


def write_jsonl(records: Iterator[dict], out: Path) -> int:
    """Write records as sorted-key JSON lines through a temporary file; return how many were written."""
    count = 0
    with atomic_path(Path(out)) as partial, partial.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n")
            count += 1
    return count


def build_question_set(
    catalog: Catalog,
    mode: str,
    sizes: tuple[int, ...],
    per_size: int,
    seed: int,
    needle_counts: tuple[int, ...] = DEFAULT_NEEDLE_COUNTS,
    progress: bool = True,
) -> Iterator[dict]:
    """The questions for every size in order, with a progress bar over all of them.

    The request is validated now; the questions are built lazily as the result is iterated.
    """
    validate_request(mode, sizes, per_size)
    return _each_size(catalog, mode, sizes, per_size, seed, needle_counts, progress)


def _each_size(
    catalog: Catalog, mode: str, sizes: tuple[int, ...], per_size: int, seed: int, needle_counts: tuple[int, ...], progress: bool
) -> Iterator[dict]:
    pools = _Pools.of(catalog)
    feasible = _Feasibility.of(pools)
    with tqdm(total=len(sizes) * per_size, desc=f"{mode} questions", unit="q", disable=not progress) as bar:
        for size in sizes:
            for record in _questions_for_size(catalog, pools, feasible, mode, size, per_size, seed, needle_counts):
                bar.update(1)
                yield record


def read_jsonl(path: Path) -> Iterator[dict]:
    """Stream the records of a question file, each checked to be a question (`question_problem`); blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise VhsError(f"question file not found: {path}")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise VhsError(f"{path}:{number}: not a JSON line") from None
            problem = question_problem(record)
            if problem:
                raise VhsError(f"{path}:{number}: {problem}")
            yield record


def question_problem(record: object) -> str | None:
    """What makes a record unusable as a question (not an object, a missing field, a malformed one), or None."""
    if not isinstance(record, dict):
        return f"not a question object (a JSON {type(record).__name__})"
    missing = [name for name in RECORD_FIELDS if name not in record]
    if missing:
        return f"question {record.get('qid', '?')!r} lacks {', '.join(missing)}"
    if record["answer"] not in ("yes", "no"):
        return f"question {record['qid']!r}: answer must be yes or no, got {record['answer']!r}"
    ids = record["image_ids"]
    if not (isinstance(ids, list) and ids and all(isinstance(i, int) for i in ids)) or len(ids) != record["size"]:
        return f"question {record['qid']!r}: image_ids must be {record['size']} integer ids (its size)"
    if not set(record["needle_ids"]) <= set(ids) or not record["needle_ids"]:
        return f"question {record['qid']!r}: needle_ids must be some of its image_ids"
    return None


def answer_from_annotations(catalog: Catalog, question: dict) -> str:
    """The answer the annotations give for a question: what an oracle reading them replies."""
    target = catalog.category_index(question["target"])
    return kind_of(question).answer(catalog.state[catalog.rows_of(question["needle_ids"]), target] == PRESENT)


def check_question(catalog: Catalog, question: dict) -> list[str]:
    """Problems with one question: needles without the anchor, distractors with it, a wrong answer."""
    anchor = catalog.category_index(question["anchor"])
    states = catalog.state[catalog.rows_of(question["image_ids"]), anchor]
    is_needle = np.isin(question["image_ids"], question["needle_ids"])
    problems = [
        f"{question['qid']}: needle {question['image_ids'][i]} lacks the anchor {question['anchor']!r}"
        for i in np.flatnonzero(is_needle & (states != PRESENT))
    ] + [
        f"{question['qid']}: distractor {question['image_ids'][i]} shows the anchor {question['anchor']!r}"
        for i in np.flatnonzero(~is_needle & (states != ABSENT))
    ]
    if answer_from_annotations(catalog, question) != question["answer"]:
        problems.append(f"{question['qid']}: stated answer {question['answer']!r} disagrees with the annotations")
    return problems
