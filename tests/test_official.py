import json
from pathlib import Path

import pytest

from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.data.official import export_official, import_official
from vhs.errors import VhsError


def same_content(ours: dict, theirs: dict) -> bool:
    keys = ("mode", "quantifier", "size", "num_needles", "question", "anchor", "target", "answer", "distractor_target_frac")
    return (
        all(ours[k] == theirs[k] for k in keys)
        and set(ours["needle_ids"]) == set(theirs["needle_ids"])
        and set(ours["image_ids"]) == set(theirs["image_ids"])
    )


def test_export_then_import_keeps_every_question(small_catalog: Catalog, tmp_path: Path) -> None:
    single = list(qs.build_question_set(small_catalog, "single", (1, 10), 4, 0, progress=False))
    multi = list(qs.build_question_set(small_catalog, "multi", (5,), 8, 0, progress=False))
    written = export_official(small_catalog, iter(single + multi), tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "single_needle/VHs_large/visual_haystack_oracle.json",
        "single_needle/VHs_large/visual_haystack_10.json",
        "multi_needle/multi_needle_2/visual_haystack_5.json",
        "multi_needle/multi_needle_3/visual_haystack_5.json",
    ]
    entry = json.loads(written[1].read_text())[0]
    assert entry["conversations"] == [
        {"from": "human", "value": single[4]["question"]},
        {"from": "gpt", "value": single[4]["answer"]},
    ]
    assert entry["pos_image"] == [small_catalog.paths[small_catalog.rows_of(single[4]["needle_ids"])[0]]]
    assert len(entry["neg_image"]) == 9 and entry["pos_image"][0].startswith("images/")
    back = [q for path in written[1:] for q in import_official(small_catalog, path, seed=0)]
    multi_by_needles = sorted(multi, key=lambda q: q["num_needles"])  # each needle count is a file of its own
    assert all(same_content(a, b) for a, b in zip(single[4:] + multi_by_needles, back, strict=True))
    assert back[0]["qid"] == "official-VHs_large-single-10-0000"


def test_import_orders_by_our_seed(small_catalog: Catalog, tmp_path: Path) -> None:
    written = export_official(
        small_catalog, qs.build_question_set(small_catalog, "single", (20,), 6, 0, progress=False), tmp_path
    )
    once, twice = list(import_official(small_catalog, written[0], 5)), list(import_official(small_catalog, written[0], 5))
    other = list(import_official(small_catalog, written[0], 6))
    assert once == twice
    assert [q["image_ids"] for q in once] != [q["image_ids"] for q in other]


def test_import_a_hand_written_release_file(small_catalog: Catalog, tmp_path: Path) -> None:
    needle_row = int((small_catalog.state[:, small_catalog.category_index("red circle")] == 1).argmax())
    entry = {
        "conversations": [
            {"from": "human", "value": "For the image with a red circle, is there a blue star?"},
            {"from": "gpt", "value": "Yes"},
        ],
        "pos_image": [small_catalog.paths[needle_row]],
        "neg_image": [small_catalog.paths[0], small_catalog.paths[1]],
    }
    path = tmp_path / "visual_haystack_3.json"
    path.write_text(json.dumps([entry]))
    (q,) = import_official(small_catalog, path, seed=0)
    assert (q["mode"], q["size"], q["anchor"], q["target"], q["answer"]) == ("single", 3, "red circle", "blue star", "yes")
    assert q["needle_ids"] == [int(small_catalog.image_ids[needle_row])]


def test_import_errors_name_the_problem(small_catalog: Catalog, tmp_path: Path) -> None:
    path = tmp_path / "visual_haystack_2.json"
    path.write_text(
        json.dumps(
            [
                {
                    "conversations": [{"value": "For the image with a red circle, is there a dog?"}, {"value": "no"}],
                    "pos_image": ["val2017/000000000001.jpg"],
                    "neg_image": [],
                }
            ]
        )
    )
    with pytest.raises(VhsError, match="image 'val2017/000000000001.jpg' is not in data set 'synth'"):
        list(import_official(small_catalog, path, 0))
    with pytest.raises(VhsError, match="official question file not found"):
        list(import_official(small_catalog, tmp_path / "nope.json", 0))
