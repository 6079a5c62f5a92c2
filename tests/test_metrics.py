import math

import numpy as np
import pandas as pd
import pytest

from vhs.metrics import (
    above_chance,
    clustered_interval,
    detectable_difference,
    fisher_test,
    mcnemar,
    mean_interval,
    position_test,
    summarize,
    trend_test,
    wilson_interval,
)


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (5, 10, 0.2366, 0.7634),  # the textbook symmetric case
        (0, 10, 0.0, 0.2775),  # upper bound z^2 / (n + z^2)
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),  # Wilson (1927)-style worked example, p = 0.308
        (500, 1000, 0.4691, 0.5309),
    ],
)
def test_wilson_known_values(k: int, n: int, low: float, high: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_without_trials_is_undefined() -> None:
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_clustered_interval_is_wider_when_answers_move_together() -> None:
    independent = np.tile([1, 0], 50)
    clusters_independent = np.arange(100)
    together = np.repeat([1, 0] * 5, 10)  # 10 questions, each asked at 10 positions with one outcome
    clusters_together = np.repeat(np.arange(10), 10)
    narrow = clustered_interval(independent, clusters_independent)
    wide = clustered_interval(together, clusters_together)
    assert narrow == pytest.approx((0.5 - 1.96 * 0.05 * math.sqrt(100 / 99), 0.5 + 1.96 * 0.05 * math.sqrt(100 / 99)), abs=1e-3)
    assert wide[1] - wide[0] > 2.5 * (narrow[1] - narrow[0])


def rows(model: str, size: int, statuses: list[str], correct: list[bool], qids: list[str] | None = None) -> list[dict]:
    qids = qids or [f"q{i}" for i in range(len(statuses))]
    return [
        {
            "model": model,
            "mode": "single",
            "size": size,
            "qid": q,
            "status": s,
            "correct": c,
            "correct_lenient": c or s == "unparsed",
            "parsed": None if s != "ok" else ("yes" if c else "no"),
        }
        for q, s, c in zip(qids, statuses, correct)
    ]


def test_summary_scores_only_answerable_and_reports_the_rest() -> None:
    table = pd.DataFrame(
        rows("m", 10, ["ok", "ok", "ok", "unparsed", "error", "not_answerable:payload"], [True, True, False, False, False, False])
        + rows("m", 100, ["not_answerable:context"] * 3, [False] * 3)
        + rows("gone", 10, ["not_run"] * 2, [False] * 2)
    )
    summary = summarize(table).set_index(["model", "size"])
    ten = summary.loc[("m", 10)]
    assert (ten["questions"], ten["scored"]) == (6, 4)
    assert ten["accuracy"] == 0.5 and ten["accuracy_lenient"] == 0.75 and ten["compliance"] == 0.75
    assert ten["errors"] == pytest.approx(1 / 6) and ten["not_answerable"] == pytest.approx(1 / 6)
    assert (ten["ci_low"], ten["ci_high"]) == pytest.approx(wilson_interval(2, 4))
    assert math.isnan(summary.loc[("m", 100), "accuracy"]) and summary.loc[("m", 100), "not_answerable"] == 1.0
    assert summary.loc[("gone", 10), "not_run"] and math.isnan(summary.loc[("gone", 10), "accuracy"])


def test_repeated_questions_switch_to_clustered_intervals() -> None:
    table = pd.DataFrame(rows("m", 10, ["ok"] * 6, [True, True, True, False, False, False], ["a", "a", "a", "b", "b", "b"]))
    summary = summarize(table).iloc[0]
    assert summary["ci_method"] == "cluster"
    per_position = summarize(table.assign(position=[0, 1, 2, 0, 1, 2]), by=("model", "size", "position"))
    assert set(per_position["ci_method"]) == {"wilson"}


def test_a_mean_of_zeros_and_ones_gets_the_wilson_interval_and_of_fractions_the_normal_one() -> None:
    assert mean_interval(np.array([1, 0, 1, 1])) == wilson_interval(3, 4)
    fractions = np.array([0.5, 1.0, 0.0, 0.5])
    low, high = mean_interval(fractions)
    half = 1.959963984540054 * fractions.std(ddof=1) / 2  # each question its own cluster: s / sqrt(n)
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))


def test_mcnemar_counts_the_discordant_questions_and_gives_the_exact_binomial_p() -> None:
    first = [True] * 8 + [False] * 2 + [True] * 5
    second = [False] * 8 + [True] * 2 + [True] * 5
    assert mcnemar(first, second) == (8, 2, pytest.approx(2 * (1 + 10 + 45) / 2**10))
    assert mcnemar([True, False], [True, False]) == (0, 0, 1.0)
    with pytest.raises(ValueError):
        mcnemar([True], [True, False])


def test_the_trend_test_is_cochran_armitage_over_log_size() -> None:
    # 10/10, 8/10, 5/10 right at N = 1, 10, 100: scores 0, 1, 2 (log10 N), so by hand
    # T = sum x (r - n p) = 0*(10-7.67) + 1*(8-7.67) + 2*(5-7.67) = -5, Var = p(1-p)(sum n x^2 - (sum n x)^2 / N)
    p = 23 / 30
    z = -5 / math.sqrt(p * (1 - p) * (50 - 30**2 / 30))
    correct = [True] * 10 + [True] * 8 + [False] * 2 + [True] * 5 + [False] * 5
    sizes = [1] * 10 + [10] * 10 + [100] * 10
    found_z, found_p = trend_test(correct, sizes)
    assert found_z == pytest.approx(z * math.sqrt(29 / 30), rel=1e-9)  # the linear-by-linear form: (N - 1) / N
    assert found_z < 0 and found_p < 0.05
    assert math.isnan(trend_test([True, False], [1, 1])[0])


def test_position_fisher_chance_and_detectable_difference_match_textbook_values() -> None:
    assert position_test(np.ones((5, 3))) == 1.0  # no answer changes with position
    # Cochran's Q for [[1,0,1],[1,1,0],[0,0,0],[1,1,1]]: column sums 3,2,2, row sums 2,2,0,3; Q = 1.0, df 2
    assert position_test(np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0], [1, 1, 1]])) == pytest.approx(math.exp(-0.5))
    assert fisher_test(3, 4, 1, 4) == pytest.approx(0.4857142857)  # the classic tea-tasting table
    assert above_chance(8, 10) == pytest.approx(56 / 1024)  # P(X >= 8), X ~ Bin(10, 1/2)
    assert detectable_difference(100) == pytest.approx((1.959964 + 0.841621) * math.sqrt(0.5 / 100), rel=1e-5)


def test_the_drop_noise_alone_gives_matches_the_normal_approximation_and_shrinks_with_more_questions() -> None:
    from vhs.metrics import noise_drop

    # two cells of 1,000 at 50%: |difference| exceeds 1.96 * sqrt(2 * 0.25 / 1000) = 0.044 5% of the time,
    # over a best cell near 0.51: about 0.086
    assert abs(noise_drop(2, 1000, 0.5) - 0.086) < 0.006
    assert noise_drop(2, 1, 0.5) == 1.0  # one question per cell: half the time one is right and the other wrong
    assert noise_drop(10, 100, 0.6) < noise_drop(10, 20, 0.6)
    assert math.isnan(noise_drop(1, 20, 0.6)) and math.isnan(noise_drop(3, 0, 0.6))
