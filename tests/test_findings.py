"""Each of the paper's findings, tested on results tables whose verdict is known by construction."""

import pandas as pd

from vhs import findings
from vhs.data.questions import NEEDLES_ONLY


def _rows(model: str, mode: str, size: int, right: int, wrong: int, start: int = 0, **extra) -> list[dict]:
    return [
        {"qid": f"q{start + i}", "model": model, "mode": mode, "size": size, "status": "ok", "correct": i < right, **extra}
        for i in range(right + wrong)
    ]


def test_accuracy_falls_is_reproduced_only_when_every_model_falls_significantly() -> None:
    falls = _rows("a", "single", 1, 20, 0) + _rows("a", "single", 100, 6, 14, 20)
    flat = _rows("b", "single", 1, 10, 10, 40) + _rows("b", "single", 100, 10, 10, 60)
    assert findings.accuracy_falls(pd.DataFrame(falls)).verdict == "reproduced"
    both = findings.accuracy_falls(pd.DataFrame(falls + flat))
    assert both.verdict == "partly (a, not b)"
    assert "a 100% at N=1 to 30% at N=100" in both.ours and "82.5% at N=1 to 55.3% at N=100" in both.paper
    alone = findings.accuracy_falls(pd.DataFrame(flat))
    assert alone.verdict == "not significant at n = 20 per point (this sample detects differences of 44% or more)"
    rises = _rows("c", "single", 1, 4, 16) + _rows("c", "single", 100, 18, 2, 20)
    assert findings.accuracy_falls(pd.DataFrame(rises)).verdict == "not reproduced (significant the other way)"
    assert findings.accuracy_falls(pd.DataFrame(columns=["model", "mode", "size", "status", "correct"])).verdict == (
        "not run on this profile"
    )


def test_several_needles_are_harder_by_fishers_test_of_one_needle_against_three() -> None:
    harder = _rows("a", NEEDLES_ONLY, 1, 38, 2) + _rows("a", NEEDLES_ONLY, 3, 24, 16, 40)
    finding = findings.multi_harder(pd.DataFrame(harder))
    assert finding.verdict == "reproduced" and finding.ours.startswith("a 95% → 60%")
    assert "85.6% → 74.8%" in finding.paper


def test_position_is_tested_on_the_full_context_models_by_cochrans_q() -> None:
    rows = []
    for qid in range(30):  # right at depth 0, wrong at depth 1 for 20 of 30 questions; the retriever never changes
        for depth in (0.0, 1.0):
            correct = depth == 0.0 or qid >= 20
            rows.append({"qid": qid, "model": "llava", "size": 2, "depth": depth, "status": "ok", "correct": correct})
            rows.append({"qid": qid, "model": "mirage", "size": 2, "depth": depth, "status": "ok", "correct": qid % 2 == 0})
    finding = findings.position_matters(pd.DataFrame(rows))
    assert finding.verdict == "reproduced" and "mirage" not in finding.ours
    assert "largest relative drop 67% (N=2" in finding.ours
    blind = pd.DataFrame([r | {"correct": True} for r in rows if r["model"] == "llava"])
    assert findings.position_matters(blind).verdict.startswith("not significant at n = 30 per point")


def test_captions_against_direct_is_a_paired_test_on_the_same_questions() -> None:
    caption = _rows("cap", NEEDLES_ONLY, 2, 30, 10)
    direct = _rows("llava", NEEDLES_ONLY, 2, 15, 25)
    finding = findings.caption_beats_direct(pd.DataFrame(caption + direct), "cap", "llava")
    assert finding.verdict == "reproduced" and "15 right only with captions, 0 only direct" in finding.ours
    tie = findings.caption_beats_direct(pd.DataFrame(caption + _rows("llava", NEEDLES_ONLY, 2, 30, 10)), "cap", "llava")
    assert tie.verdict.startswith("not significant at n = 40 per point")
    # the paper's side, computed from its tables: July's caption baseline above the commercial models at small N,
    # the ICLR one above none of them
    assert "Table 2). Per size there, the caption baseline was above GPT-4o (low-res) at 5, 10, 50 (of 4 sizes)" in finding.paper
    assert "reversed it (Fig. 3B, multi-needle): above GPT-4o at no size (of 5 sizes)" in finding.paper


def test_mirage_scales_when_above_chance_at_the_largest_size_where_the_full_context_model_cannot_answer() -> None:
    mirage = _rows("mirage", "single", 1000, 40, 10)
    refused = [r | {"status": "not_answerable:context", "correct": None} for r in _rows("synth-llava", "single", 1000, 0, 5)]
    finding = findings.mirage_scales(pd.DataFrame(mirage + refused))
    assert finding.verdict == "reproduced"
    assert finding.ours.startswith("mirage 80% of 50 questions at N=1,000")
    assert "synth-llava cannot take that size" in finding.ours
    chance = findings.mirage_scales(pd.DataFrame(_rows("mirage", "single", 1000, 26, 24)))
    assert chance.verdict.startswith("not significant at n = 50 per point")


def test_context_limits_name_each_model_that_ran_out_of_room_and_say_when_that_is_ours() -> None:
    over = [r | {"status": "not_answerable:context"} for r in _rows("synth-llava", "single", 5, 0, 2, 10)]
    rows = pd.DataFrame(_rows("synth-llava", "single", 3, 2, 0) + over + _rows("mirage", "single", 5, 2, 0, 20))
    synth = findings.context_limits(rows, "synth")
    assert synth.ours == "synth-llava takes up to 3 images and reports larger ones not answerable."
    assert synth.verdict.startswith("by construction") and findings.context_limits(rows, "coco").verdict == "reproduced"
    assert findings.Finding(2, "3", "t", "p.", "o.", "v").markdown() == "**Finding 2: t.** The paper: p. Here: o. **Verdict: v.**"


def test_two_models_are_compared_on_the_questions_both_answered() -> None:
    rows = []
    for qid in range(12):
        rows.append({"qid": qid, "model": "a", "status": "ok", "correct": qid < 11})
        rows.append({"qid": qid, "model": "b", "status": "ok" if qid else "not_answerable:context", "correct": qid < 2})
    sentence = findings.paired_comparison(pd.DataFrame(rows), "a", "b")
    assert sentence == (
        "On the 11 questions both answered, a was right on 9 that b missed and b on 0 that a missed "
        "(exact McNemar p = 0.0039): a is the more accurate here."
    )
    even = pd.DataFrame([{"qid": 0, "model": m, "status": "ok", "correct": True} for m in ("a", "b")])
    assert findings.paired_comparison(even, "a", "b").endswith("no difference is detectable at this sample (p ≥ 0.05).")
    assert findings.paired_comparison(even, "a", "c") == "a and c answered no question in common in this build."


def test_a_retrievers_accuracy_is_split_by_whether_it_kept_the_needle() -> None:
    kept = _rows("mirage", "single", 100, 18, 2, needle_recall=1.0)
    missed = _rows("mirage", "single", 100, 5, 5, 20, needle_recall=0.0)
    sentence = findings.kept_or_missed(pd.DataFrame(kept + missed), "mirage")
    assert sentence.startswith(
        "Of its 30 answered single-needle questions, mirage was right on 90% of the 20 where its retriever kept the needle"
        " and on 50% of the 10 where it missed it (Fisher's exact p = 0.02"
    )
    assert "none of the 0 where it missed" in findings.kept_or_missed(pd.DataFrame(kept), "mirage")
    assert findings.kept_or_missed(pd.DataFrame(kept), "clip") == (
        "clip answered no single-needle question with its retrieval recorded in this build."
    )


def test_agreement_counts_the_same_answers_on_the_questions_both_answered() -> None:
    first = [{**row, "parsed": "yes"} for row in _rows("cap", "single", 2, 3, 1)]
    second = [{**row, "parsed": "yes" if i < 3 else "no"} for i, row in enumerate(_rows("llava", "single", 2, 3, 2))]
    assert findings.agreement(pd.DataFrame(first + second), "cap", "llava") == (
        "cap and llava gave the same answer on 3 of the 4 questions both answered (75%)."
    )
