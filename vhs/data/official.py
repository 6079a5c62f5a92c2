"""Interoperability with the released VHs benchmark files (their layouts: `vhs.data.released`).

Each file is one JSON list; each entry holds `conversations` ([question, answer] as `{"from", "value"}`
turns), `pos_image` (needle paths) and `neg_image` (distractor paths). It stores no presentation order: the
official code shuffles unseeded at run time, so on import we draw the order from our seed. Export writes the
October-2024 layout the official runners read: `single_needle/VHs_large/visual_haystack_{N}.json` (the
needle alone as `visual_haystack_oracle.json`) and `multi_needle/multi_needle_{k}/visual_haystack_{N}.json`
for k needles.
"""

import json
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TextIO

import numpy as np

from vhs.data.catalog import PRESENT, Catalog
from vhs.data.kinds import parse_question
from vhs.data.released import ORACLE, ReleasedFile, released_file, released_files
from vhs.errors import VhsError

SMALL_SUBSET = "VHs_small"  # both layouts' smaller draw of the single-needle sizes
EXPORTED_SUBSET = "VHs_large"  # the single-needle subset an export is written as (the one the official runners read)
JULY_PREFIX = "coco/"  # July-2024 files name images from the folder above COCO's root


def official_entry(catalog: Catalog, question: dict) -> dict:
    """One question in the official layout (needles in `pos_image`, the rest in `neg_image`)."""
    needles = set(question["needle_ids"])
    distractors = [i for i in question["image_ids"] if i not in needles]
    return {
        "id": question["qid"],
        "conversations": [
            {"from": "human", "value": question["question"]},
            {"from": "gpt", "value": question["answer"]},
        ],
        "pos_image": [catalog.paths[row] for row in catalog.rows_of(question["needle_ids"])],
        "neg_image": [catalog.paths[row] for row in catalog.rows_of(distractors)],
    }


def official_path(question: dict) -> str:
    """Where the official runners read a question of this mode, needle count and size."""
    if question["mode"] == "single":
        size = ORACLE if question["size"] == 1 else question["size"]
        return f"single_needle/{EXPORTED_SUBSET}/visual_haystack_{size}.json"
    return f"multi_needle/multi_needle_{question['num_needles']}/visual_haystack_{question['size']}.json"


def export_official(catalog: Catalog, questions: Iterable[dict], out_dir: Path) -> list[Path]:
    """Write questions in the official layout under `out_dir`, streaming (one open file per path); returns the
    files in the order they were started."""
    handles: dict[Path, TextIO] = {}
    try:
        for question in questions:
            path = Path(out_dir) / official_path(question)
            if path not in handles:
                path.parent.mkdir(parents=True, exist_ok=True)
                handles[path] = path.open("w", encoding="utf-8")
                handles[path].write("[\n")
            else:
                handles[path].write(",\n")
            handles[path].write(json.dumps(official_entry(catalog, question), sort_keys=True))
    finally:
        for handle in handles.values():
            handle.write("\n]\n")
            handle.close()
    return list(handles)


def file_identity(path: Path) -> str:
    """What tells a file's questions from another file's of the same size: its released subset
    (`VHs_large`, `multi_needle_2`, …), else the folder that holds it."""
    released = released_file(path)
    return released.subset if released else Path(path).parent.name or "file"


def _read_entries(path: Path) -> list:
    if not path.is_file():
        raise VhsError(f"official question file not found: {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise VhsError(f"corrupt official question file {path}: {exc}") from None
    if not isinstance(entries, list):
        raise VhsError(f"corrupt official question file {path}: expected a JSON list")
    return entries


def official_files(root: Path) -> list[ReleasedFile]:
    """The released question files under a folder, in either layout."""
    return released_files([p.relative_to(root).as_posix() for p in Path(root).rglob("*.json")])


def official_profile(path: Path) -> str:
    """The profile whose images a released file (or a folder of them) names: synth for our own exports of
    synth questions (`images/…`), coco otherwise (`val2017/…`, `coco/val2017/…`)."""
    path = Path(path)
    entries = _read_entries(path if path.is_file() else path / official_files(path)[0].path)
    first = entries[0].get("pos_image", [""])[0] if entries and isinstance(entries[0], dict) else ""
    return "synth" if str(first).startswith("images/") else "coco"


def import_official_tree(
    catalog: Catalog, root: Path, seed: int, mode: str | None = None, sizes: tuple[int, ...] = ()
) -> Iterator[dict]:
    """Every released file under `root` (`vhs data vhs-official` puts them there), optionally of one mode and
    some sizes (the oracle file is size 1)."""
    for released in official_files(root):
        size = 1 if released.size == ORACLE else int(released.size)
        if (mode is None or released.mode == mode) and (not sizes or size in sizes):
            yield from import_official(catalog, Path(root) / released.path, seed)


def chapter_set(
    catalog: Catalog, root: Path, mode: str, sizes: tuple[int, ...], per_size: int, seed: int
) -> tuple[list[dict], tuple[int, ...]]:
    """The released questions a chapter asks in place of generated ones, and the sizes the release lacks.

    Per size, the first `per_size` questions of the main subset, shared evenly among that size's files (the 2-
    and the 3-needle file of a multi-needle size); `VHs_small`, a smaller draw of the same sizes, is left out.
    """
    files: dict[int, list[ReleasedFile]] = {}
    for released in official_files(root):
        if released.mode == mode and released.subset != SMALL_SUBSET:
            files.setdefault(1 if released.size == ORACLE else int(released.size), []).append(released)
    questions = []
    for size in sizes:
        share = -(-per_size // len(files.get(size, [None])))
        for released in files.get(size, []):
            questions += list(islice(import_official(catalog, Path(root) / released.path, seed), share))
    return questions, tuple(size for size in sizes if size not in files)


def import_official(catalog: Catalog, path: Path, seed: int) -> Iterator[dict]:
    """Read a released `visual_haystack_{N}.json` into our question records.

    Image paths are resolved through the catalog (a July-2024 `coco/` prefix is dropped); the presentation
    order of entry `i` is a permutation drawn from (seed, i); the qid names the file's subset, mode and size.
    """
    path = Path(path)
    entries = _read_entries(path)
    identity = file_identity(path)
    row_of_path = {p: row for row, p in enumerate(catalog.paths)}
    row_of_path |= {JULY_PREFIX + p: row for p, row in row_of_path.items()}

    def rows_of(paths: list[str]) -> np.ndarray:
        missing = [p for p in paths if p not in row_of_path]
        if missing:
            raise VhsError(f"{path.name}: image {missing[0]!r} is not in data set {catalog.name!r} (root {catalog.root})")
        return np.array([row_of_path[p] for p in paths], dtype=np.int64)

    for index, entry in enumerate(entries):
        try:
            text, answer = entry["conversations"][0]["value"], entry["conversations"][1]["value"]
            needle_rows, distractor_rows = rows_of(entry["pos_image"]), rows_of(entry["neg_image"])
        except (KeyError, IndexError, TypeError):
            raise VhsError(f"{path.name}: entry {index} lacks conversations/pos_image/neg_image") from None
        # Not checked against our annotations (`check_question`): the released answers were decided with the
        # official annotations and thresholds, which ours need not match; the report's oracle row shows any gap.
        kind, anchor, target = parse_question(text)
        mode = kind.mode
        size = len(needle_rows) + len(distractor_rows)
        rng = np.random.default_rng([seed, index])
        rows = np.concatenate([needle_rows, distractor_rows])[rng.permutation(size)]
        positions = np.flatnonzero(np.isin(rows, needle_rows))
        target_col = catalog.category_index(target)
        catalog.category_index(anchor)
        yield {
            "qid": f"official-{identity}-{mode}-{size}-{index:04d}",
            "mode": mode,
            "quantifier": None if kind.mode == "single" else kind.name,
            "size": size,
            "num_needles": len(needle_rows),
            "question": text,
            "anchor": anchor,
            "target": target,
            "answer": answer.strip().lower(),
            "image_ids": catalog.image_ids[rows].tolist(),
            "needle_ids": catalog.image_ids[rows[positions]].tolist(),
            "needle_positions": positions.tolist(),
            "distractor_target_frac": round(float((catalog.state[distractor_rows, target_col] == PRESENT).mean()), 6)
            if len(distractor_rows)
            else 0.0,
            "dataset": catalog.name,
            "seed": seed,
        }
