"""The paper's six headline findings (`shared/spec` §4), each tested on the results of the chapter that
studies it: the paper's numbers, ours, the test and the sample it rests on, and a verdict.

A verdict is "reproduced" when the paper's direction holds and is significant at 5% for every model the
chapter tests, "partly" when for some, "not reproduced" when a test is significant the other way, and
otherwise "not significant", with the smallest difference the chapter's sample could have detected (two-sided
5%, 80% power). A model that was not run is left out; with none run, the verdict is "not run on this profile".
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from vhs.data.questions import NEEDLES_ONLY
from vhs.metrics import SCORED, above_chance, detectable_difference, fisher_test, mcnemar, position_test, trend_test
from vhs.paper import caption_against_commercial, paper_value

ALPHA = 0.05
# Models that rank each image on its own and show the LM only what they keep: the needle's position cannot
# change their single-needle answers, so the position finding is tested on the others.
POSITION_BLIND = frozenset({"mirage", "mirage-query", "clip-retrieve"})
TITLES = {
    1: "accuracy falls as the haystack grows",
    2: "models run out of room",
    3: "several needles are harder than one",
    4: "the needle's position matters",
    5: "captions beat direct viewing",
    6: "MIRAGE scales to the largest haystacks",
}


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings, as this build tested it."""

    number: int
    chapter: str
    title: str
    paper: str
    ours: str
    verdict: str

    def markdown(self) -> str:
        """The chapter's closing paragraph: the finding, the paper's claim beside ours, and the verdict."""
        return f"**Finding {self.number}: {self.title}.** The paper: {self.paper} Here: {self.ours} **Verdict: {self.verdict}.**"

    def record(self) -> dict:
        """The finding as one row of the introduction's table."""
        return asdict(self)


@dataclass(frozen=True)
class _Test:
    """One model's test: whether the paper's direction holds, its p-value, and the questions per point."""

    model: str
    holds: bool
    p: float
    n: int
    accuracy: float = 0.5


def _verdict(tests: list[_Test], sets: int = 2) -> str:
    if not tests:
        return "not run on this profile"
    significant = [t for t in tests if t.p < ALPHA]
    if significant and all(t.holds for t in significant) and len(significant) == len(tests):
        return "reproduced"
    if any(not t.holds for t in significant):
        return "not reproduced (significant the other way)"
    if significant:
        return f"partly ({', '.join(t.model for t in significant)}, not {', '.join(t.model for t in tests if t.p >= ALPHA)})"
    n = min(t.n for t in tests)
    smallest = detectable_difference(n, float(np.mean([t.accuracy for t in tests])), sets=sets)
    return f"not significant at n = {n} per point (this sample detects differences of {smallest:.0%} or more)"


def _scored(results: pd.DataFrame) -> pd.DataFrame:
    return results[results["status"].isin(SCORED)]


def _p(value: float) -> str:
    return "p = n/a" if np.isnan(value) else f"p = {value:.2g}"


def _right_on_both(results: pd.DataFrame, first: str, second: str) -> tuple[pd.Series, pd.Series]:
    """Whether each of two models was right, on the questions both answered (same order)."""
    scored = _scored(results)
    right = [scored[scored["model"] == model].set_index("qid")["correct"].astype(bool) for model in (first, second)]
    common = right[0].index.intersection(right[1].index)
    return right[0][common], right[1][common]


def agreement(results: pd.DataFrame, first: str, second: str) -> str:
    """How often two models gave the same answer, on the questions both answered."""
    scored = _scored(results)
    answers = [scored[scored["model"] == model].set_index("qid")["parsed"] for model in (first, second)]
    common = answers[0].index.intersection(answers[1].index)
    if common.empty:
        return f"{first} and {second} answered no question in common in this build."
    same = int((answers[0][common] == answers[1][common]).sum())
    share = same / len(common)
    return f"{first} and {second} gave the same answer on {same:,} of the {len(common):,} questions both answered ({share:.0%})."


def paired_comparison(results: pd.DataFrame, first: str, second: str) -> str:
    """One sentence comparing two models of `results` on the questions both answered: how many each got
    right that the other missed, the exact McNemar p-value, and what that lets the page say at 5%."""
    right_first, right_second = _right_on_both(results, first, second)
    if right_first.empty:
        return f"{first} and {second} answered no question in common in this build."
    only_first, only_second, p = mcnemar(right_first, right_second)
    if p < ALPHA:
        verdict = f"{first if only_first > only_second else second} is the more accurate here"
    else:
        verdict = f"no difference is detectable at this sample (p ≥ {ALPHA})"
    return (
        f"On the {len(right_first):,} questions both answered, {first} was right on {only_first} that {second} missed "
        f"and {second} on {only_second} that {first} missed (exact McNemar p = {p:.2g}): {verdict}."
    )


def kept_or_missed(results: pd.DataFrame, model: str) -> str:
    """One sentence on a retrieving model's single-needle answers: its accuracy where its retriever kept the
    needle and where it missed it, each with its count, and Fisher's exact test of the difference."""
    scored = _scored(results)
    rows = scored[(scored["model"] == model) & (scored["mode"] == "single")].dropna(subset=["needle_recall"])
    if rows.empty:
        return f"{model} answered no single-needle question with its retrieval recorded in this build."
    kept = rows["needle_recall"] >= 1
    right = rows["correct"].astype(bool)
    counts = [(int(right[part].sum()), int(part.sum())) for part in (kept, ~kept)]
    shares = [f"{r / n:.0%} of the {n:,}" if n else "none of the 0" for r, n in counts]
    p = fisher_test(*counts[0], *counts[1]) if all(n for _, n in counts) else np.nan
    return (
        f"Of its {len(rows):,} answered single-needle questions, {model} was right on {shares[0]} where its retriever "
        f"kept the needle and on {shares[1]} where it missed it (Fisher's exact {_p(p)})."
    )


def accuracy_falls(results: pd.DataFrame, chapter: str = "3") -> Finding:
    """Finding 1 on single-needle results: a Cochran-Armitage trend over log N per model."""
    tests, parts = [], []
    for model, rows in _scored(results[results["mode"] == "single"]).groupby("model", sort=False):
        z, p = trend_test(rows["correct"], rows["size"])
        if np.isnan(z):
            continue
        n = int(rows.groupby("size").size().min())
        tests.append(_Test(model, z < 0, p, n, float(rows["correct"].mean())))
        first, last = rows[rows["size"] == rows["size"].min()], rows[rows["size"] == rows["size"].max()]
        parts.append(
            f"{model} {first['correct'].mean():.0%} at N={first['size'].iloc[0]:,} to {last['correct'].mean():.0%} at "
            f"N={last['size'].iloc[0]:,} (z = {z:.1f}, {_p(p)})"
        )
    paper = (
        f"every model falls as N grows, GPT-4o from {paper_value('GPT-4o', 'single', '1'):.1%} at N=1 to "
        f"{paper_value('GPT-4o', 'single', '100'):.1%} at N=100 (ICLR 2025 Fig. 2)."
    )
    ours = (
        "; ".join(parts) + ": Cochran-Armitage trend over log N, on the sizes each model could take."
        if parts
        else "no model answered two sizes."
    )
    return Finding(1, chapter, TITLES[1], paper, ours, _verdict(tests))


def context_limits(results: pd.DataFrame, profile: str, chapter: str = "3") -> Finding:
    """Finding 2: which models could not take the larger haystacks, and from which size."""
    parts = []
    for model, rows in results[results["status"] != "not_run"].groupby("model", sort=False):
        over = rows[rows["status"].str.startswith("not_answerable")]
        if len(over):
            taken = rows.loc[~rows["status"].str.startswith("not_answerable"), "size"]
            largest = f"up to {taken.max():,} images" if len(taken) else "no haystack"
            parts.append(f"{model} takes {largest} and reports larger ones not answerable")
    paper = "no existing model takes more than about 100 images; LLaVA-1.5 about 3 in its 2K context (ICLR 2025 §3)."
    if not parts:
        return Finding(2, chapter, TITLES[2], paper, "every model that ran took every size.", "not reproduced")
    if profile == "synth":
        verdict = "by construction (the synth models' context windows are our choice, made to mirror LLaVA-1.5's 2K)"
    else:
        verdict = "reproduced"
    return Finding(2, chapter, TITLES[2], paper, "; ".join(parts) + ".", verdict)


def multi_harder(results: pd.DataFrame, chapter: str = "4") -> Finding:
    """Finding 3 on needles-only results: accuracy with one needle against three (Fisher's exact test)."""
    tests, parts = [], []
    needles = _scored(results[results["mode"] == NEEDLES_ONLY])
    for model, rows in needles.groupby("model", sort=False):
        one, three = rows[rows["size"] == 1]["correct"], rows[rows["size"] == 3]["correct"]
        if one.empty or three.empty:
            continue
        p = fisher_test(int(one.sum()), len(one), int(three.sum()), len(three))
        tests.append(_Test(model, one.mean() > three.mean(), p, min(len(one), len(three)), float(rows["correct"].mean())))
        parts.append(f"{model} {one.mean():.0%} → {three.mean():.0%} ({_p(p)})")
    gemini = [paper_value("Gemini-1.5-pro", "multi_needles_only", size) for size in ("1", "3")]
    paper = (
        f"even with needles only, accuracy drops from one needle to three (Gemini {gemini[0]:.1%} → {gemini[1]:.1%}, "
        "ICLR 2025 Fig. 3A)."
    )
    ours = "; ".join(parts) + ", one needle against three, Fisher's exact test." if parts else "no model answered both settings."
    return Finding(3, chapter, TITLES[3], paper, ours, _verdict(tests))


def position_matters(results: pd.DataFrame, chapter: str = "5") -> Finding:
    """Finding 4 on the position study: Cochran's Q across depths per model and size (each question asked at
    every depth), Bonferroni-corrected over a model's sizes; the position-blind retrievers are left out."""
    tests, parts = [], []
    scored = _scored(results[~results["model"].isin(POSITION_BLIND)])
    for model, rows in scored.groupby("model", sort=False):
        cells = []
        for size, cell in rows.groupby("size"):
            grid = cell.pivot_table(index="qid", columns="depth", values="correct", aggfunc="first").dropna()
            if grid.shape[1] < 2 or grid.empty:
                continue
            accuracy = grid.mean()
            drop = 1 - accuracy.min() / accuracy.max() if accuracy.max() else 0.0
            cells.append((size, position_test(grid.to_numpy()), drop, len(grid)))
        if not cells:
            continue
        p = min(1.0, min(c[1] for c in cells) * len(cells))
        size, _, drop, _ = max(cells, key=lambda c: c[2])
        tests.append(_Test(model, drop > 0, p, min(c[3] for c in cells), float(rows["correct"].mean())))
        parts.append(f"{model}'s largest relative drop {drop:.0%} (N={size}; Cochran's Q, Bonferroni over sizes {_p(p)})")
    paper = (
        "relative drops of up to 26.5% (LLaVA, needle not last) and 28.5% (proprietary models, needle not first) "
        "(ICLR 2025 Fig. 4)."
    )
    ours = "; ".join(parts) + "." if parts else "no full-context model answered at two depths."
    return Finding(4, chapter, TITLES[4], paper, ours, _verdict(tests))


def caption_beats_direct(results: pd.DataFrame, caption: str, direct: str, chapter: str = "6") -> Finding:
    """Finding 5 on the needles-only multi-needle questions: caption-then-LLM against the direct model on the
    same questions (exact McNemar)."""
    paper = (
        f"reading captions beats looking at the images on multi-needle questions in the July 2024 version "
        f"(needles only: caption-based {paper_value('Caption-based (LLaVA + Llama-3)', 'multi', 'oracle'):.0%} against "
        f"Claude-3 Opus {paper_value('Claude-3 Opus', 'multi', 'oracle'):.0%} and Gemini-1.5 "
        f"{paper_value('Gemini-1.5', 'multi', 'oracle'):.0%}, arXiv v1 Table 2). Per size there, the caption baseline "
        f"was {caption_against_commercial('arXiv v1 Table 2')}. The ICLR version reversed it (Fig. 3B, multi-needle): "
        f"{caption_against_commercial('ICLR2025 Fig.3B (digitized)')}."
    )
    multi = results[results["mode"] == NEEDLES_ONLY]
    right_caption, right_direct = _right_on_both(multi, caption, direct)
    if right_caption.empty:
        return Finding(5, chapter, TITLES[5], paper, "the two models share no answered question.", _verdict([]))
    only_caption, only_direct, p = mcnemar(right_caption, right_direct)
    ours = (
        f"on {len(right_caption):,} needles-only questions {caption} {right_caption.mean():.0%} against {direct} "
        f"{right_direct.mean():.0%}; {only_caption} right only with captions, {only_direct} only direct "
        f"(exact McNemar {_p(p)})."
    )
    accuracy = float(pd.concat([right_caption, right_direct]).mean())
    test = _Test(caption, only_caption > only_direct, p, len(right_caption), accuracy)
    return Finding(5, chapter, TITLES[5], paper, ours, _verdict([test]))


def mirage_scales(results: pd.DataFrame, chapter: str = "7") -> Finding:
    """Finding 6: MIRAGE above chance at the largest haystack (one-sided exact binomial), where the
    full-context model cannot answer."""
    paper = (
        f"MIRAGE is the only method that scales to 10,000 images: {paper_value('MIRAGE-8.3B', 'single', '10000'):.1%} "
        "at 10K, single needle (ICLR 2025 Fig. 2)."
    )
    rows = _scored(results[results["model"] == "mirage"])
    if rows.empty:
        return Finding(6, chapter, TITLES[6], paper, "MIRAGE was not run.", _verdict([]))
    largest = rows[rows["size"] == rows["size"].max()]
    size, right, n = int(largest["size"].iloc[0]), int(largest["correct"].sum()), len(largest)
    p = above_chance(right, n)
    at_size = results[(results["size"] == size) & (results["model"] != "mirage")]
    refused = sorted(set(at_size.loc[at_size["status"].str.startswith("not_answerable"), "model"]))
    ours = (
        f"mirage {right / n:.0%} of {n} questions at N={size:,}, this build's largest (above chance: one-sided exact "
        f"binomial {_p(p)})" + (f"; {', '.join(refused)} cannot take that size." if refused else ".")
    )
    return Finding(6, chapter, TITLES[6], paper, ours, _verdict([_Test("mirage", True, p, n, right / n)], sets=1))
