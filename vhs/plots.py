"""The book's figures (seaborn/matplotlib). Each function returns a Figure and touches no global state."""

import itertools
from collections.abc import Iterable

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from vhs.data.catalog import PRESENT, Catalog
from vhs.data.questions import NEEDLES_ONLY

NEEDLE_COLOUR = "#e4002b"
MODE_ORDER = ("single", NEEDLES_ONLY, "multi")  # the panels of accuracy_vs_size, left to right


def haystack_grid(catalog: Catalog, question: dict, columns: int = 10, max_images: int = 50) -> Figure:
    """The first `max_images` images of a haystack in presentation order, needles outlined in red."""
    ids = question["image_ids"][:max_images]
    needles = set(question["needle_ids"])
    rows = int(np.ceil(len(ids) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.3 * columns, 1.45 * rows + 0.6), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for position, (ax, image_id) in enumerate(zip(axes.flat, ids)):
        with Image.open(catalog.image_path(image_id)) as image:
            pixels = np.asarray(image.convert("RGB"))
        ax.imshow(pixels, interpolation="nearest")
        ax.set_title(str(position), fontsize=7, color=NEEDLE_COLOUR if image_id in needles else "black")
        if image_id in needles:
            height, width = pixels.shape[:2]
            ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, linewidth=4, edgecolor=NEEDLE_COLOUR))
    shown = f" (first {len(ids)} of {question['size']})" if question["size"] > len(ids) else ""
    fig.suptitle(f"{question['question']}  answer: {question['answer']}{shown}", fontsize=10)
    fig.tight_layout()
    return fig


def category_frequencies(catalog: Catalog) -> Figure:
    """How many images show each category (visible instances only), sorted by frequency."""
    counts = pd.DataFrame({"category": catalog.category_names, "images": (catalog.state == PRESENT).sum(axis=0)}).sort_values(
        "images", ascending=False
    )
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.18 * len(counts))))
    sns.barplot(data=counts, y="category", x="images", color="#4c72b0", ax=ax)
    ax.set_xlabel(f"images where the category is visible (area >= {catalog.min_area_frac:.0%} of the image)")
    ax.set_ylabel("")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    return fig


def question_statistics(questions: pd.DataFrame) -> Figure:
    """Answer balance per size, needle position over relative depth, and distractors holding the target."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    balance = questions.groupby("size")["answer"].apply(lambda a: (a == "yes").mean()).reset_index(name="yes fraction")
    sns.barplot(data=balance, x="size", y="yes fraction", color="#4c72b0", ax=axes[0])
    axes[0].axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    axes[0].set_ylim(0, 1)
    axes[0].set_title("answer balance")
    large = questions[questions["size"] >= 10]
    deciles = pd.Series(
        [10 * p // size for size, positions in zip(large["size"], large["needle_positions"]) for p in positions], dtype=int
    )
    sns.histplot(deciles, bins=10, binrange=(0, 10), color="#55a868", ax=axes[1])
    axes[1].set_xlabel("needle depth decile (0 = first tenth of the haystack)")
    axes[1].set_title("needle positions (sizes >= 10)")
    sns.pointplot(data=questions[questions["size"] > 1], x="size", y="distractor_target_frac", color="#c44e52", ax=axes[2])
    axes[2].set_ylabel("fraction of distractors")
    axes[2].set_title("distractors that hold the target")
    fig.tight_layout()
    return fig


def accuracy_vs_size(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> Figure:
    """Accuracy (Wilson 95% band) against haystack size per model, one panel per question mode; the
    paper's numbers for the same mode dashed beside them.

    `summary` is `vhs.metrics.summarize` output (with `mode`), `paper` is `vhs.paper.paper_curve`
    rows (with `mode`). Sizes a model could not take are left out, as the paper's plots leave them
    out, and models that were not run are named under the axes.
    """
    modes = sorted(set(summary["mode"]), key=lambda m: (MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER), m))
    models = list(dict.fromkeys(summary["model"]))
    colours = dict(zip(models, sns.color_palette("tab10", len(models))))
    fig, axes = plt.subplots(1, len(modes), figsize=(7 * len(modes) ** 0.8, 4), squeeze=False, sharey=True)
    for ax, mode in zip(axes[0], modes):
        rows = summary[summary["mode"] == mode]
        _accuracy_panel(ax, rows, paper[paper["mode"] == mode] if paper is not None and len(paper) else None, colours)
        if len(modes) > 1:
            ax.set_title(mode)
    fig.tight_layout()
    return fig


def _accuracy_panel(ax: plt.Axes, summary: pd.DataFrame, paper: pd.DataFrame | None, colours: dict[str, tuple]) -> None:
    ran = summary[~summary["not_run"]].dropna(subset=["accuracy"])
    for model, rows in ran.groupby("model"):
        ax.plot(rows["size"], rows["accuracy"], marker="o", label=model, color=colours[model])
        ax.fill_between(rows["size"], rows["ci_low"], rows["ci_high"], color=colours[model], alpha=0.2)
    if paper is not None and len(paper):
        groups = list(paper.groupby("model"))
        shades = sns.color_palette("Greys", len(groups) + 2)[2:]
        for (model, rows), shade, marker in zip(groups, shades, "xs^dv<>"):
            ax.plot(rows["size"], rows["accuracy"], linestyle="--", marker=marker, color=shade, label=f"paper: {model}")
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    sizes = sorted(set(summary["size"]) | (set(paper["size"]) if paper is not None else set()))
    ax.set_xticks(sizes, [f"{size:,}" for size in sizes], fontsize=7)
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("haystack size (images)")
    ax.set_ylabel("accuracy")
    _name_not_run(ax, summary.loc[summary["not_run"], "model"])
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left")


def _name_not_run(ax: plt.Axes, models: Iterable[str]) -> None:
    """Name the models that were not run under the axes, so a figure drops none silently."""
    names = sorted(set(models))
    if names:
        ax.text(0.0, -0.22, "not run: " + ", ".join(names), transform=ax.transAxes, fontsize=8)


def accuracy_vs_position(summary: pd.DataFrame, paper: pd.DataFrame | None = None, columns: int = 3) -> Figure:
    """Accuracy against the needle's depth in the haystack (0 = first image, 1 = last), one panel per
    model and one line per haystack size; the paper's models in panels of their own, dashed.

    `summary` is `summarize(..., by=("model", "size", "depth"))`; `paper` holds the paper's
    position rows (`vhs.paper.paper_positions`). Models not run are named in the title.
    """
    panels = [(model, rows, "-") for model, rows in summary[~summary["not_run"]].groupby("model", sort=False)]
    if paper is not None and len(paper):
        panels += [(f"paper: {model}", rows, "--") for model, rows in paper.groupby("model", sort=False)]
    rows_needed = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(rows_needed, columns, figsize=(4 * columns, 3 * rows_needed), squeeze=False, sharey=True)
    sizes = sorted(set(summary["size"]) | (set(paper["size"]) if paper is not None and len(paper) else set()))
    colours = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    for ax, (title, rows, style) in zip(axes.flat, panels):
        for size, line in rows.dropna(subset=["accuracy"]).groupby("size"):
            ax.plot(
                line["depth"], line["accuracy"], linestyle=style, marker="o", markersize=3, color=colours[size], label=f"N={size}"
            )
        ax.set_title(title, fontsize=9)
        ax.set_ylim(0, 1.02)
        ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
        ax.set_xlabel("needle depth (0 first, 1 last)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    not_run = sorted(set(summary.loc[summary["not_run"], "model"]))
    fig.suptitle("accuracy by needle position" + (f" (not run: {', '.join(not_run)})" if not_run else ""), fontsize=10)
    fig.tight_layout()
    return fig


def cost_vs_size(costs: pd.DataFrame, not_run: Iterable[str] = ()) -> Figure:
    """Seconds per question and LM input tokens per question against haystack size, one line per
    model; the models in `not_run` are named under the axes.

    `costs` has `model`, `size`, `seconds` and `tokens` (one row per answered question).
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    _name_not_run(axes[0], not_run)
    for ax, column, label in zip(axes, ("seconds", "tokens"), ("seconds per question", "LM input tokens per question")):
        shown = costs.dropna(subset=[column])
        if len(shown):
            sns.lineplot(data=shown, x="size", y=column, hue="model", marker="o", errorbar=None, ax=ax)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("haystack size (images)")
        ax.set_ylabel(label)
    fig.tight_layout()
    return fig


def run_overview(ledger: pd.DataFrame) -> Figure:
    """What was run: per chapter and model, the questions answered, not answerable (over a limit),
    failed, and not run, as stacked horizontal bars (`vhs.book.read_ledger` rows)."""
    parts = {"answered": "#4c72b0", "not_answerable": "#dd8452", "errors": "#c44e52", "not_run": "#bbbbbb"}
    rows = ledger.sort_values(["chapter", "model"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 0.28 * max(len(rows), 4) + 1))
    left = np.zeros(len(rows))
    for column, colour in parts.items():
        values = rows[column].to_numpy(dtype=float) if len(rows) else left
        ax.barh(np.arange(len(rows)), values, left=left, color=colour, label=column.replace("_", " "))
        left += values
    ax.set_yticks(np.arange(len(rows)), [f"{c} · {m}" for c, m in zip(rows["chapter"], rows["model"])], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("questions")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def training_curves(curves: dict[str, list[float]], title: str, smooth: int = 20) -> Figure:
    """Each loss curve of a checkpoint's `curve.json` (moving average over `smooth` steps), one panel per curve."""
    shown = {name: values for name, values in curves.items() if values and not name.endswith("_step")}
    fig, axes = plt.subplots(1, len(shown), figsize=(3.2 * len(shown), 2.8), squeeze=False)
    for ax, (name, values) in zip(axes[0], shown.items()):
        series = pd.Series(values)
        steps = curves.get(f"{name.split('@')[0]}_step", list(range(len(values))))
        ax.plot(steps, series.rolling(min(smooth, len(series)), min_periods=1).mean() if len(series) > 50 else series)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def recall_vs_size(recall: pd.DataFrame) -> Figure:
    """Needle recall@k against haystack size, one line per retriever, one panel per k."""
    ks = sorted(recall["k"].unique())
    fig, axes = plt.subplots(1, len(ks), figsize=(5 * len(ks), 3.6), squeeze=False, sharey=True)
    for ax, k in zip(axes[0], ks):
        sns.lineplot(data=recall[recall["k"] == k], x="size", y="recall", hue="retriever", marker="o", ax=ax)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"needle recall@{k}")
        ax.set_xlabel("haystack size (images)")
    fig.tight_layout()
    return fig


def mirage_diagram() -> Figure:
    """MIRAGE's data flow as boxes and arrows, with the synth sizes."""
    fig, ax = plt.subplots(figsize=(11, 2.6))
    ax.axis("off")
    boxes = [
        ("N images", 0.0),
        ("frozen encoder\n64 patches", 1.6),
        ("Q-Former\nK=8 queries", 3.2),
        ("projector\nK tokens / image", 4.8),
        ("retriever\n1 logit / image", 6.4),
        ("keep: top-k, or\nthe best if none >= 0.5", 8.0),
        ("tiny LM\nkept tokens + question", 9.6),
    ]
    for text, x in boxes:
        ax.add_patch(Rectangle((x, 0.3), 1.3, 0.6, facecolor="#dce6f2", edgecolor="#4c72b0"))
        ax.text(x + 0.65, 0.6, text, ha="center", va="center", fontsize=8)
    for (_, x), (_, nxt) in itertools.pairwise(boxes):
        ax.annotate("", xy=(nxt, 0.6), xytext=(x + 1.3, 0.6), arrowprops={"arrowstyle": "->"})
    ax.text(3.85, 0.12, "query mode: the queries also read the question", ha="center", fontsize=7, style="italic")
    ax.text(7.05, 1.02, "question", ha="center", fontsize=7, style="italic")
    ax.set_xlim(-0.1, 11.0)
    ax.set_ylim(0, 1.15)
    return fig
