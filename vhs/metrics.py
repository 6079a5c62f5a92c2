"""Accuracy with confidence intervals, compliance, and not-answerable fractions (`vhs report`).

Scoring follows `shared/spec/README.md` §3: over-limit haystacks and models not run are not
scored; a failed call (status `error`) is not a "no" and is not scored either, but its share is
reported beside the accuracy; an unparsed reply is scored as wrong; a reply the output cap cut before it
said anything (`truncated`: a reasoning model's thinking spent the cap) is not scored, and its share is
reported (ours: the cap is the harness's choice, not the model's answer). Intervals are Wilson 95%; when
a group holds the same question more than once (the position study asks each question at several
positions), the interval is a cluster-robust normal interval with questions as clusters instead.
"""

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats import contingency_tables

Z95 = 1.959963984540054
DEPTH_BUCKETS = 10  # the position study places needles by tenths of haystacks above this size, as the paper
SCORED = ("ok", "unparsed")
# What `summarize` reads from a results table (tables written by earlier versions lack some newer columns).
SUMMARY_COLUMNS = ("qid", "model", "mode", "size", "status", "parsed", "correct", "correct_lenient")


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) for no trials."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def clustered_interval(values: np.ndarray, clusters: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """Normal interval for a mean with cluster-robust (CR1-style) standard error, clipped to [0, 1]."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = values.mean()
    sums = pd.Series(values - mean).groupby(np.asarray(clusters)).sum().to_numpy()
    g = len(sums)
    if g < 2:
        return math.nan, math.nan
    se = math.sqrt((sums**2).sum() * g / (g - 1)) / n
    return max(0.0, mean - z * se), min(1.0, mean + z * se)


def mean_interval(values: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """95% interval for the mean of per-question values in [0, 1]: Wilson when every value is 0 or 1 (a
    proportion), else the normal interval with each question its own cluster."""
    values = np.asarray(values, dtype=float)
    if np.isin(values, (0.0, 1.0)).all():
        return wilson_interval(int(values.sum()), len(values), z)
    return clustered_interval(values, np.arange(len(values)), z)


def mcnemar(first: Iterable[bool], second: Iterable[bool]) -> tuple[int, int, float]:
    """Exact two-sided McNemar test of two models on the same questions, in the same order: how many the
    first got right and the second wrong, the reverse, and the p-value of that split under no difference."""
    pairs = [(bool(a), bool(b)) for a, b in zip(first, second, strict=True)]
    only_first = sum(a and not b for a, b in pairs)
    only_second = sum(b and not a for a, b in pairs)
    if not only_first + only_second:
        return only_first, only_second, 1.0
    both = sum(a and b for a, b in pairs)
    table = [[both, only_first], [only_second, len(pairs) - both - only_first - only_second]]
    return only_first, only_second, float(contingency_tables.mcnemar(table, exact=True).pvalue)


def trend_test(correct: Iterable[bool], sizes: Iterable[int]) -> tuple[float, float]:
    """Cochran-Armitage test for a trend in accuracy over log10(haystack size), in its linear-by-linear form
    (the variance's N - 1 for N): (z, two-sided p); z < 0 when accuracy falls as the haystack grows.
    (nan, nan) with fewer than two sizes or one outcome only."""
    frame = pd.DataFrame({"correct": [bool(c) for c in correct], "size": list(sizes)})
    counts = pd.crosstab(frame["correct"], frame["size"]).reindex([True, False], fill_value=0)
    if counts.shape[1] < 2 or (counts.sum(axis=1) == 0).any():
        return math.nan, math.nan
    result = contingency_tables.Table(counts.to_numpy(), shift_zeros=False).test_ordinal_association(
        row_scores=np.array([1.0, 0.0]), col_scores=np.log10(counts.columns.to_numpy(dtype=float))
    )
    return float(result.zscore), float(result.pvalue)


def position_test(correct: np.ndarray) -> float:
    """Cochran's Q test that accuracy is the same at every position, for questions (rows) each asked at
    every position (columns): its p-value, 1.0 when no question's answer changes with position."""
    correct = np.asarray(correct, dtype=float)
    varies = correct.min(axis=1) != correct.max(axis=1)
    if not varies.any():
        return 1.0
    return float(contingency_tables.cochrans_q(correct[varies]).pvalue)


def fisher_test(right_a: int, n_a: int, right_b: int, n_b: int) -> float:
    """Fisher's exact two-sided p-value that two independent question sets have the same accuracy."""
    return float(stats.fisher_exact([[right_a, n_a - right_a], [right_b, n_b - right_b]]).pvalue)


def above_chance(right: int, n: int, chance: float = 0.5) -> float:
    """One-sided exact binomial p-value that accuracy is above `chance` (nan for no questions)."""
    return float(stats.binomtest(right, n, chance, alternative="greater").pvalue) if n else math.nan


def detectable_difference(n: int, accuracy: float = 0.5, alpha: float = 0.05, power: float = 0.8, sets: int = 2) -> float:
    """The smallest difference in accuracy that a two-sided test at `alpha` detects with `power`, near
    `accuracy` (normal approximation): between two independent sets of `n` questions each, or (`sets=1`)
    between one set and a fixed value such as chance; nan for no questions."""
    if n <= 0:
        return math.nan
    spread = math.sqrt(sets * accuracy * (1 - accuracy) / n)
    return (stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * spread


def noise_drop(cells: int, questions: int, accuracy: float, quantile: float = 0.95, draws: int = 20_000) -> float:
    """The relative drop (1 - worst / best) across `cells` cells of `questions` questions each that noise alone
    reaches with probability 1 - `quantile`, when every cell has the same `accuracy` and answers are drawn
    independently (a seeded simulation; nan for fewer than 2 cells or no questions)."""
    if cells < 2 or questions < 1 or np.isnan(accuracy):
        return math.nan
    shares = np.random.default_rng(0).binomial(questions, accuracy, size=(draws, cells)) / questions
    best = shares.max(axis=1)
    drops = np.where(best > 0, 1 - shares.min(axis=1) / np.where(best > 0, best, 1), 0.0)
    return float(np.quantile(drops, quantile))


def _summarize_group(group: pd.DataFrame) -> pd.Series:
    scored = group[group["status"].isin(SCORED)]
    n_scored = len(scored)
    correct = int(scored["correct"].sum())
    if n_scored and scored["qid"].duplicated().any():
        low, high = clustered_interval(scored["correct"].to_numpy(), scored["qid"].to_numpy())
        method = "cluster"
    else:
        low, high = wilson_interval(correct, n_scored)
        method = "wilson"
    total = len(group)
    return pd.Series(
        {
            "questions": total,
            "scored": n_scored,
            "accuracy": correct / n_scored if n_scored else math.nan,
            "ci_low": low,
            "ci_high": high,
            "ci_method": method,
            "accuracy_lenient": scored["correct_lenient"].mean() if n_scored else math.nan,
            "compliance": scored["parsed"].notna().mean() if n_scored else math.nan,
            "not_answerable": group["status"].str.startswith("not_answerable").mean(),
            "errors": (group["status"] == "error").mean(),
            "truncated": (group["status"] == "truncated").mean(),
            "reasoning_tokens": group["reasoning_tokens"].astype(float).mean() if "reasoning_tokens" in group else math.nan,
            "cost_usd": group["cost_usd"].sum(min_count=1) if "cost_usd" in group else math.nan,
            "not_run": bool((group["status"] == "not_run").all()),
        }
    )


def summarize(results: pd.DataFrame, by: tuple[str, ...] = ("model", "mode", "size")) -> pd.DataFrame:
    """One row per group of `by`: accuracy with its interval, lenient accuracy, compliance, shares."""
    return results.groupby(list(by), dropna=False, sort=True).apply(_summarize_group, include_groups=False).reset_index()


def needle_depth(results: pd.DataFrame) -> pd.Series:
    """Where each question's (first) needle sits, from 0 (first image) to 1 (last), as the paper's
    position study measures it: the index over size − 1 in haystacks of up to DEPTH_BUCKETS images,
    the middle of the needle's depth bucket (tenth of the haystack) in larger ones."""
    size = results["size"]
    bucket = (results["position"] * DEPTH_BUCKETS // size).clip(upper=DEPTH_BUCKETS - 1)
    return index_depth(results["position"], size).where(size <= DEPTH_BUCKETS, bucket_depth(bucket))


def index_depth(position: pd.Series, size: pd.Series) -> pd.Series:
    """The depth (0 to 1) of needle index `position` in a haystack of `size` images."""
    return position / (size - 1).clip(lower=1)


def bucket_depth(bucket: pd.Series) -> pd.Series:
    """The depth (0 to 1) of the middle of each depth bucket 0 … DEPTH_BUCKETS − 1."""
    return (bucket + 0.5) / DEPTH_BUCKETS
