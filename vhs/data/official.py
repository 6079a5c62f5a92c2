"""Interoperability with the released VHs benchmark files.

The official release is one JSON list per haystack size, `visual_haystack_{N}.json`, under
`single_needle/` or `multi_needle/`; each entry holds `conversations` ([question, answer] as
`{"from", "value"}` turns), `pos_image` (needle paths) and `neg_image` (distractor paths), paths
relative to the image root (`val2017/000000123456.jpg`). It stores no presentation order: the
official code shuffles unseeded at run time, so on import we draw the order from our seed.
"""

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from vhs.data.catalog import PRESENT, Catalog
from vhs.data.kinds import parse_question
from vhs.errors import VhsError

_FOLDER = {"single": "single_needle", "multi": "multi_needle"}


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


def export_official(catalog: Catalog, questions: Iterable[dict], out_dir: Path) -> list[Path]:
    """Write questions as `out_dir/{single,multi}_needle/visual_haystack_{N}.json`, streaming.

    Questions must arrive grouped by (mode, size), as `vhs questions` produces them.
    """
    written: list[Path] = []
    handle = None
    current: tuple[str, int] | None = None
    try:
        for question in questions:
            key = (question["mode"], question["size"])
            if key != current:
                if handle is not None:
                    handle.write("\n]\n")
                    handle.close()
                path = Path(out_dir) / _FOLDER[key[0]] / f"visual_haystack_{key[1]}.json"
                if path in written:
                    raise VhsError(f"questions for {key[0]} size {key[1]} are not grouped together")
                path.parent.mkdir(parents=True, exist_ok=True)
                handle = path.open("w", encoding="utf-8")
                handle.write("[\n")
                written.append(path)
                current = key
            else:
                handle.write(",\n")
            handle.write(json.dumps(official_entry(catalog, question), sort_keys=True))
    finally:
        if handle is not None:
            handle.write("\n]\n")
            handle.close()
    return written


def import_official(catalog: Catalog, path: Path, seed: int) -> Iterator[dict]:
    """Read a released `visual_haystack_{N}.json` into our question records.

    Image paths are resolved through the catalog; the presentation order of entry `i` is a
    permutation drawn from (seed, i).
    """
    path = Path(path)
    if not path.is_file():
        raise VhsError(f"official question file not found: {path}")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise VhsError(f"corrupt official question file {path}: {exc}") from None
    if not isinstance(entries, list):
        raise VhsError(f"corrupt official question file {path}: expected a JSON list")
    row_of_path = {p: row for row, p in enumerate(catalog.paths)}

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
            "qid": f"official-{mode}-{size}-{index:04d}",
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
