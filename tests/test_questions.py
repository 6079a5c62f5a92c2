import collections
import hashlib
from pathlib import Path

import pytest

from vhs.cache import ResponseCache
from vhs.data import questions as qs
from vhs.data.catalog import ABSENT, PRESENT, Catalog
from vhs.data.kinds import KINDS, Kind, parse_question
from vhs.errors import VhsError
from vhs.eval.runner import RunOptions, evaluate

# sha256 of the single-needle set (sizes 1,5,20; 6 per size; seed 0) on the 400-scene fixture.
GOLDEN_SINGLE_SHA256 = "2a80370eb67a8f6a1a01d0e6f03f9204394e50f25a04c812e55b5a1d1f22e22b"


def build(catalog: Catalog, mode: str = "single", sizes=(1, 5, 20), per_size: int = 6, seed: int = 0, **kw) -> list[dict]:
    return list(qs.build_question_set(catalog, mode, sizes, per_size, seed, progress=False, **kw))


def written_sha256(catalog: Catalog, path: Path, **kw) -> str:
    qs.write_jsonl(iter(build(catalog, **kw)), path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_exact_question_set_for_a_seed(small_catalog: Catalog, tmp_path: Path) -> None:
    assert written_sha256(small_catalog, tmp_path / "q.jsonl") == GOLDEN_SINGLE_SHA256


def test_same_arguments_same_bytes_other_seed_other_set(small_catalog: Catalog, tmp_path: Path) -> None:
    first = written_sha256(small_catalog, tmp_path / "a.jsonl", mode="multi", sizes=(5, 10))
    again = written_sha256(small_catalog, tmp_path / "b.jsonl", mode="multi", sizes=(5, 10))
    other = written_sha256(small_catalog, tmp_path / "c.jsonl", mode="multi", sizes=(5, 10), seed=1)
    assert first == again != other


def test_a_size_does_not_depend_on_the_other_sizes_requested(small_catalog: Catalog) -> None:
    alone = build(small_catalog, sizes=(20,))
    together = [q for q in build(small_catalog, sizes=(1, 5, 20)) if q["size"] == 20]
    assert alone == together


def test_record_fields_and_first_question(small_catalog: Catalog) -> None:
    q = build(small_catalog, sizes=(5,))[0]
    assert set(q) >= {
        "qid",
        "mode",
        "size",
        "question",
        "anchor",
        "target",
        "answer",
        "image_ids",
        "needle_ids",
        "needle_positions",
        "seed",
    }
    assert q["qid"] == "single-5-0000" and q["answer"] == "yes" and len(q["image_ids"]) == 5
    assert q["question"] == KINDS["single"].text(q["anchor"], q["target"])
    assert [q["image_ids"][p] for p in q["needle_positions"]] == q["needle_ids"]


def test_every_question_checks_out_against_the_annotations(small_catalog: Catalog) -> None:
    questions = build(small_catalog, sizes=(1, 2, 10, 50), per_size=40) + build(
        small_catalog, mode="multi", sizes=(3, 10, 50), per_size=40
    )
    for q in questions:
        assert qs.check_question(small_catalog, q) == []
        assert qs.answer_from_annotations(small_catalog, q) == q["answer"]  # the oracle scores 100%


def test_check_question_catches_a_wrong_answer_and_a_bad_distractor(small_catalog: Catalog) -> None:
    q = build(small_catalog, sizes=(5,))[0]
    flipped = {**q, "answer": "no" if q["answer"] == "yes" else "yes"}
    assert any("disagrees with the annotations" in p for p in qs.check_question(small_catalog, flipped))
    anchor = small_catalog.category_index(q["anchor"])
    intruder = int(small_catalog.image_ids[(small_catalog.state[:, anchor] == PRESENT)][0])
    if intruder in q["needle_ids"]:
        intruder = int(small_catalog.image_ids[(small_catalog.state[:, anchor] == PRESENT)][1])
    bad = {**q, "image_ids": [*q["image_ids"][:-1], intruder]}
    assert any("shows the anchor" in p for p in qs.check_question(small_catalog, bad))


def test_balance_pairs_and_anchor_spread(small_catalog: Catalog) -> None:
    questions = build(small_catalog, sizes=(10,), per_size=100)
    answers = collections.Counter(q["answer"] for q in questions)
    assert answers == {"yes": 50, "no": 50}
    pairs = collections.Counter((q["anchor"], q["target"], q["answer"]) for q in questions)
    for (anchor, target, answer), count in pairs.items():
        assert pairs[(anchor, target, "no" if answer == "yes" else "yes")] == count
    anchors = collections.Counter(q["anchor"] for q in questions)
    assert len(anchors) == len(small_catalog.category_names)  # 50 pairs over 25 anchors: each twice
    assert max(anchors.values()) - min(anchors.values()) == 0
    assert all(q["anchor"] != q["target"] for q in questions)


def test_distractors_may_hold_the_target(small_catalog: Catalog) -> None:
    questions = build(small_catalog, sizes=(50,), per_size=40)
    assert sum(q["distractor_target_frac"] for q in questions) > 0
    for q in questions:
        target = small_catalog.category_index(q["target"])
        others = [i for i in q["image_ids"] if i not in q["needle_ids"]]
        held = small_catalog.state[small_catalog.rows_of(others), target] == PRESENT
        assert q["distractor_target_frac"] == round(float(held.mean()), 6)


def test_multi_needle_counts_quantifiers_and_answers(small_catalog: Catalog) -> None:
    questions = build(small_catalog, mode="multi", sizes=(10,), per_size=80)
    kinds = collections.Counter((q["quantifier"], q["num_needles"], q["answer"]) for q in questions)
    assert kinds == {(qt, n, a): 10 for qt in ("all", "any") for n in (2, 3) for a in ("yes", "no")}
    for q in questions:
        target = small_catalog.category_index(q["target"])
        holds = small_catalog.state[small_catalog.rows_of(q["needle_ids"]), target]
        assert set(holds.tolist()) <= {PRESENT, ABSENT}
        assert len(q["needle_ids"]) == q["num_needles"] == len(q["needle_positions"])
        assert q["question"].startswith("For all images with")


def test_needles_only_setting(small_catalog: Catalog) -> None:
    questions = build(small_catalog, mode="multi", sizes=(3,), per_size=8, needle_counts=(3,))
    assert all(q["needle_positions"] == [0, 1, 2] for q in questions)


def test_needle_position_is_spread_over_the_haystack(small_catalog: Catalog) -> None:
    positions = [q["needle_positions"][0] for q in build(small_catalog, sizes=(5,), per_size=200)]
    assert set(positions) == {0, 1, 2, 3, 4}


def test_size_larger_than_the_eligible_distractors_is_one_clear_error(small_catalog: Catalog) -> None:
    with pytest.raises(VhsError, match=r"haystack size 400 needs 399 distractors but data set 'synth' has at most \d+ eligible"):
        build(small_catalog, sizes=(400,))


@pytest.mark.parametrize(
    ("mode", "sizes", "per_size", "message"),
    [
        ("single", (5,), 3, "positive even number"),
        ("single", (0,), 2, "at least 1"),
        ("triple", (5,), 2, "unknown mode"),
        ("multi", (1,), 2, "cannot hold 2 needles"),
    ],
)
def test_bad_requests(small_catalog: Catalog, mode: str, sizes: tuple, per_size: int, message: str) -> None:
    with pytest.raises(VhsError, match=message):
        build(small_catalog, mode=mode, sizes=sizes, per_size=per_size)


def test_articles_and_question_parsing() -> None:
    assert KINDS["single"].text("orange star", "apple") == "For the image with an orange star, is there an apple?"
    assert (
        KINDS["any"].text("traffic light", "hair drier")
        == "For all images with a traffic light, do any of them contain a hair drier?"
    )
    for kind in KINDS.values():
        assert parse_question(kind.text("umbrella", "red circle")) == (kind, "umbrella", "red circle")
    with pytest.raises(VhsError, match="not a VHs question"):
        parse_question("Is there a dog?")


def test_writing_is_atomic(small_catalog: Catalog, tmp_path: Path) -> None:
    def broken():
        yield build(small_catalog, sizes=(5,))[0]
        raise VhsError("boom")

    with pytest.raises(VhsError):
        qs.write_jsonl(broken(), tmp_path / "q.jsonl")
    assert list(tmp_path.iterdir()) == []


def test_a_new_kind_declared_only_in_the_kinds_module_is_built_checked_parsed_and_answered(
    small_catalog: Catalog, small_synth: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    none = Kind(
        "none",
        "multi",
        "For all images with {anchor}, do none of them contain {target}?",
        yes_counts=lambda n: (0,),
        no_counts=lambda n: tuple(range(1, n + 1)),
        says_yes=lambda holds: not any(holds),
        keep=3,
    )
    monkeypatch.setitem(KINDS, "none", none)
    questions = build(small_catalog, mode="multi", sizes=(6,), per_size=12)
    toy = [q for q in questions if q["quantifier"] == "none"]
    assert len(toy) == 4 and {q["answer"] for q in toy} == {"yes", "no"}
    for q in toy:
        holds = small_catalog.state[small_catalog.rows_of(q["needle_ids"]), small_catalog.category_index(q["target"])]
        assert q["answer"] == ("no" if (holds == PRESENT).any() else "yes")
        assert qs.check_question(small_catalog, q) == []
        assert parse_question(q["question"]) == (none, q["anchor"], q["target"])
    oracle = evaluate(f"oracle?data={small_synth}", toy, ResponseCache(tmp_path / "cache.sqlite"), RunOptions(data=small_synth))
    assert oracle["correct"].all() and len(oracle) == len(toy)


def test_needles_only_is_the_needles_alone_reported_as_their_own_mode(small_catalog: Catalog) -> None:
    questions = qs.needles_only(small_catalog, (1, 2, 3), 4, 0)
    assert [(q["size"], q["num_needles"]) for q in questions] == [(n, n) for n in (1, 2, 3) for _ in range(4)]
    assert {q["mode"] for q in questions} == {qs.NEEDLES_ONLY}
    assert all(q["needle_ids"] == q["image_ids"] for q in questions)
    assert [q["quantifier"] for q in questions[:4]] == [None] * 4 and {q["quantifier"] for q in questions[4:]} == {"all", "any"}
    single = build(small_catalog, sizes=(1,), per_size=4)
    assert [{**q, "mode": "single"} for q in questions[:4]] == single
