import pandas as pd
import pytest
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


def test_many_models_not_run_are_named_on_wrapped_lines_within_the_figure() -> None:
    names = [f"anthropic:claude-model-number-{k}-20250929" for k in range(8)]
    summary = pd.DataFrame(
        {
            "model": ["a", *names],
            "mode": ["single"] * 9,
            "size": [1] * 9,
            "accuracy": [0.9] + [float("nan")] * 8,
            "ci_low": [0.8] + [float("nan")] * 8,
            "ci_high": [1.0] + [float("nan")] * 8,
            "not_run": [False] + [True] * 8,
        }
    )
    fig = plots.accuracy_vs_size(summary)
    (said,) = [t.get_text() for t in fig.axes[0].texts]
    assert said.replace("\n", " ") == "not run: " + ", ".join(names) and said.count("\n") >= 3
    fig.canvas.draw()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())
    assert drawn.width <= plots.WIDTH * 1.01  # the names wrap instead of widening the figure


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
    assert {line.get_color() for ax in axes for line in ax.get_lines() if line.get_label() == "a"} == {plots.model_colour("a")}
    assert axes[1].get_xlabel() == "needles (the haystack is the needles)"
    assert axes[2].get_xlabel() == "haystack size (images)"


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
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ch. 3 · a", "ch. 3 · b"]


def _summary(models: list[str], sizes: list[int], not_answerable: float = 0.0) -> pd.DataFrame:
    rows = [
        {
            "model": m,
            "mode": "single",
            "size": n,
            "accuracy": 0.7,
            "ci_low": 0.6,
            "ci_high": 0.8,
            "not_answerable": not_answerable if n == sizes[-1] else 0.0,
            "not_run": False,
        }
        for m in models
        for n in sizes
    ]
    return pd.DataFrame(rows)


def _colours(fig, label: str) -> set[str]:
    return {line.get_color() for ax in fig.axes for line in ax.get_lines() if line.get_label() == label}


def test_a_model_has_one_colour_in_every_figure_and_its_paper_counterpart_shares_it_dashed() -> None:
    models = ["synth-llava", "mirage", "openai:gpt-4o", "some-new-spec"]
    paper = pd.concat([paper_curve("GPT-4o"), paper_curve("MIRAGE-8.3B"), paper_curve("Gemini-1.5-pro")])
    size_fig = plots.accuracy_vs_size(_summary(models, [1, 10]), paper)
    costs = pd.DataFrame({"model": models, "size": [1] * 4, "seconds": [0.1] * 4, "tokens": [10.0] * 4})
    cost_fig = plots.cost_vs_size(costs)
    recall = pd.DataFrame(
        {"retriever": models, "mode": "single", "size": 10, "k": 1, "recall": 0.5, "questions": 4, "ci_low": 0.2, "ci_high": 0.8}
    )
    recall_fig = plots.recall_vs_size(recall)
    for model in models:
        assert (
            _colours(size_fig, model) == _colours(cost_fig, model) == _colours(recall_fig, model) == {plots.model_colour(model)}
        )
    assert len({plots.model_colour(m) for m in models}) == len(models)
    paper_lines = {line.get_label(): line for line in size_fig.axes[0].get_lines() if line.get_label().startswith("paper:")}
    assert paper_lines["paper: GPT-4o"].get_color() == plots.model_colour("openai:gpt-4o")
    assert paper_lines["paper: MIRAGE-8.3B"].get_color() == plots.model_colour("mirage")
    assert {line.get_linestyle() for line in paper_lines.values()} == {"--"}
    markers = [line.get_marker() for line in paper_lines.values()]
    assert len(set(markers)) == len(markers) and "o" not in markers


def test_a_size_only_partly_answerable_is_a_hollow_marker_named_in_the_legend() -> None:
    fig = plots.accuracy_vs_size(_summary(["synth-caption"], [1, 10, 20], not_answerable=0.48))
    hollow = [line for line in fig.axes[0].get_lines() if line.get_label() == "_partial"]
    assert [line.get_xydata().tolist() for line in hollow] == [[[20.0, 0.7]]]
    assert hollow[0].get_markerfacecolor() == "white"
    assert plots.PARTIAL_LABEL in [t.get_text() for t in fig.legends[0].get_texts()]
    assert not [
        line for line in plots.accuracy_vs_size(_summary(["a"], [1, 10])).axes[0].get_lines() if line.get_label() == "_partial"
    ]


def test_the_recall_figure_draws_a_band_and_one_colour_per_model_in_two_line_styles() -> None:
    recall = pd.DataFrame(
        {
            "retriever": ["mirage", "clip (question)", "clip (anchor name)"] * 2,
            "mode": "single",
            "size": [10] * 3 + [100] * 3,
            "k": 1,
            "recall": 0.5,
            "questions": 8,
            "ci_low": 0.3,
            "ci_high": 0.7,
        }
    )
    models = {"mirage": "mirage", "clip (question)": "clip-retrieve", "clip (anchor name)": "clip-retrieve"}
    ax = plots.recall_vs_size(recall, models).axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["clip (question)"].get_color() == lines["clip (anchor name)"].get_color() == plots.model_colour("clip-retrieve")
    assert lines["clip (question)"].get_linestyle() != lines["clip (anchor name)"].get_linestyle()
    assert len(ax.collections) == 3 and ax.get_ylabel() == "recall@1"


def test_every_figure_fits_the_column_with_labelled_axes_and_readable_text(small_catalog: Catalog) -> None:
    questions = list(qs.build_question_set(small_catalog, "single", (1, 10, 20), 10, 0, progress=False))
    position = pd.DataFrame(
        {
            "model": "a",
            "size": [2, 2],
            "depth": [0.0, 1.0],
            "accuracy": [0.9, 0.7],
            "ci_low": 0.5,
            "ci_high": 1.0,
            "not_run": False,
        }
    )
    figures = [
        plots.haystack_grid(small_catalog, questions[-1]),
        plots.category_frequencies(small_catalog),
        plots.question_statistics(pd.DataFrame(questions)),
        plots.accuracy_vs_size(_summary(["a", "b"], [1, 10]), paper_curve("GPT-4o")),
        plots.accuracy_vs_position(position, paper_positions().query("model == 'GPT-4o'")),
        plots.cost_vs_size(pd.DataFrame({"model": ["a"], "size": [1], "seconds": [0.1], "tokens": [10.0]})),
        plots.mirage_training(_mirage_curves(), "a run"),
        plots.mirage_training(None, "no run"),
        plots.mirage_diagram(),
    ]
    for fig in figures:
        fig.canvas.draw()
        assert fig.get_figwidth() <= plots.WIDTH
        texts = [t for t in fig.findobj(plots.plt.Text) if t.get_text() and t.get_visible()]
        small = {t.get_text() for t in texts if t.get_fontsize() < plots.FONT}
        assert not small, small
        for ax in fig.axes:
            if ax.axison and ax.has_data():
                assert ax.get_xlabel() and (ax.get_ylabel() or not ax.get_yticklabels()), ax.get_title()
    renderer = figures[-1].canvas.get_renderer()
    boxes = [p.get_window_extent(renderer) for p in figures[-1].axes[0].patches]
    for text, box in zip([t for t in figures[-1].axes[0].texts if "\n" in t.get_text() or t.get_text() == "N images"], boxes):
        inside = text.get_window_extent(renderer)
        assert box.x0 <= inside.x0 and inside.x1 <= box.x1, text.get_text()
    plots.plt.close("all")


def test_two_models_with_equal_accuracy_are_drawn_side_by_side() -> None:
    ax = plots.accuracy_vs_size(_summary(["clip-retrieve", "synth-llava"], [2, 3])).axes[0]
    lines = {line.get_label(): line.get_xydata() for line in ax.get_lines()}
    left, right = lines["clip-retrieve"], lines["synth-llava"]
    assert (left[:, 1] == right[:, 1]).all() and (left[:, 0] < right[:, 0]).all()
    assert right[:, 0] / left[:, 0] == pytest.approx([plots.DODGE] * 2)


def _mirage_curves() -> dict[str, list[float]]:
    return {
        "captions": [2.0] * 10,
        "retrieval": [1.0] * 20,
        "cotrain": [0.5] * 30,
        "retriever": [0.7] * 50,
        "lm": [0.6] * 30,
        "recall@1": [0.2, 0.9],
        "recall_step": [10, 59],
    }


def test_mirage_training_draws_every_curve_on_the_runs_own_steps_with_the_stage_boundaries() -> None:
    fig = plots.mirage_training(_mirage_curves(), "mirage")
    stages, losses, recall = fig.axes
    first = {line.get_label(): line.get_xdata() for line in stages.get_lines() if not line.get_label().startswith("_")}
    assert {name: (x[0], x[-1]) for name, x in first.items()} == {"captions": (0, 9), "retrieval": (10, 29), "cotrain": (30, 59)}
    second = {line.get_label(): line.get_xdata() for line in losses.get_lines() if not line.get_label().startswith("_")}
    assert {name: (x[0], x[-1]) for name, x in second.items()} == {"retriever": (10, 59), "LM": (30, 59)}
    assert sorted(line.get_xdata()[0] for line in stages.get_lines() if line.get_label().startswith("_")) == [10, 30]
    assert recall.get_lines()[0].get_xdata().tolist() == [10, 59] and recall.get_ylabel() == "held-out recall@1"
