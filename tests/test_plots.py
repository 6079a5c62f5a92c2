import pandas as pd
from matplotlib.patches import Rectangle

from vhs import plots
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.paper import paper_curve, paper_positions


def test_haystack_grid_outlines_exactly_the_needles(small_catalog: Catalog) -> None:
    question = next(iter(qs.build_question_set(small_catalog, "multi", (12,), 2, 0, progress=False)))
    fig = plots.haystack_grid(small_catalog, question, columns=5, max_images=10)
    shown = [ax for ax in fig.axes if ax.images]
    outlined = [ax for ax in shown if any(isinstance(p, Rectangle) for p in ax.patches)]
    assert len(shown) == 10
    assert [int(ax.get_title()) for ax in outlined] == [p for p in question["needle_positions"] if p < 10]
    assert "(first 10 of 12)" in fig._suptitle.get_text()


def test_statistics_and_frequencies_draw_one_panel_each(small_catalog: Catalog) -> None:
    questions = pd.DataFrame(qs.build_question_set(small_catalog, "single", (1, 10, 20), 10, 0, progress=False))
    fig = plots.question_statistics(questions)
    assert [ax.get_title() for ax in fig.axes] == [
        "answer balance",
        "needle positions (sizes >= 10)",
        "distractors that hold the target",
    ]
    bars = plots.category_frequencies(small_catalog).axes[0].patches
    assert len(bars) == len(small_catalog.category_names)


def test_accuracy_vs_size_draws_runs_paper_and_names_what_was_not_run() -> None:
    summary = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "mode": ["single"] * 3,
            "size": [1, 10, 1],
            "accuracy": [0.9, 0.7, float("nan")],
            "ci_low": [0.8, 0.6, float("nan")],
            "ci_high": [1.0, 0.8, float("nan")],
            "not_run": [False, False, True],
        }
    )
    paper = pd.DataFrame({"model": ["GPT-4o"] * 2, "mode": ["single"] * 2, "size": [1, 10], "accuracy": [0.8, 0.7]})
    ax = plots.accuracy_vs_size(summary, paper).axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["a", "paper: GPT-4o"]
    assert [t.get_text() for t in ax.texts] == ["not run: b"]


def test_accuracy_vs_size_draws_one_panel_per_mode_with_that_modes_paper_rows() -> None:
    summary = pd.DataFrame(
        {
            "model": ["a", "a", "a"],
            "mode": ["multi", "needles only", "single"],
            "size": [5, 2, 1],
            "accuracy": [0.6, 0.7, 0.9],
            "ci_low": [0.5, 0.6, 0.8],
            "ci_high": [0.7, 0.8, 1.0],
            "not_run": [False] * 3,
        }
    )
    paper = paper_curve("GPT-4o", "multi_needles_only")
    axes = plots.accuracy_vs_size(summary, paper).axes
    assert [ax.get_title() for ax in axes] == ["single", "needles only", "multi"]
    labels = [[line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")] for ax in axes]
    assert labels == [["a"], ["a", "paper: GPT-4o"], ["a"]]
    assert {line.get_color() for ax in axes for line in ax.get_lines() if line.get_label() == "a"} == {
        plots.sns.color_palette("tab10", 1)[0]
    }


def test_position_figure_has_a_panel_per_model_and_paper_model() -> None:
    summary = pd.DataFrame(
        {
            "model": ["a", "a", "b"],
            "size": [2, 2, 2],
            "depth": [0.0, 1.0, 0.0],
            "accuracy": [0.9, 0.7, float("nan")],
            "not_run": [False, False, True],
        }
    )
    fig = plots.accuracy_vs_position(summary, paper_positions().query("model == 'GPT-4o'"))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["a", "paper: GPT-4o"] and "not run: b" in fig._suptitle.get_text()
    assert fig.axes[0].get_lines()[0].get_xydata().tolist() == [[0.0, 0.9], [1.0, 0.7]]


def test_cost_figure_plots_seconds_and_tokens_on_log_axes() -> None:
    costs = pd.DataFrame(
        {"model": ["a", "a", "b"], "size": [1, 10, 1], "seconds": [0.1, 1.0, 0.2], "tokens": [10.0, 100.0, float("nan")]}
    )
    axes = plots.cost_vs_size(costs, ["c"]).axes
    assert [ax.get_ylabel() for ax in axes] == ["seconds per question", "LM input tokens per question"]
    assert [t.get_text() for t in axes[0].texts] == ["not run: c"]
    assert all(ax.get_xscale() == ax.get_yscale() == "log" for ax in axes)


def test_run_overview_stacks_each_chapters_questions_by_outcome() -> None:
    ledger = pd.DataFrame(
        {
            "chapter": ["3 single", "3 single"],
            "model": ["a", "b"],
            "answered": [8, 0],
            "not_answerable": [2, 0],
            "errors": [0, 0],
            "not_run": [0, 10],
        }
    )
    ax = plots.run_overview(ledger).axes[0]
    widths = [(round(p.get_x()), round(p.get_width())) for p in ax.patches]
    assert widths == [(0, 8), (0, 0), (8, 2), (0, 0), (10, 0), (0, 0), (10, 0), (0, 10)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["3 single · a", "3 single · b"]
