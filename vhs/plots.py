"""The book's figures (seaborn/matplotlib). Each function returns a Figure and touches no global state.

Every figure fits the book's content column (`WIDTH` inches, legends and ticks at `FONT` points or more),
and every model has one colour in every chapter (`model_colour`). Our runs are solid lines with round
markers and a 95% band; the paper's numbers are dashed, each paper model with its own marker.
"""

import textwrap
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping

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
WIDTH = 8.0  # inches: the widest figure that the book's column shows without shrinking its text below FONT
FONT = 9  # points: the smallest legend, tick and label text

# One colour per model across the book. A paper model shares the colour of the model that stands for it
# here (synth-llava is LLaVA-v1.5-7B on the coco profile; openai:gpt-4o is the paper's GPT-4o), so that
# "ours against theirs" is one hue, solid against dashed.
_FAMILIES = {
    "#1f77b4": ("synth-llava", "LLaVA-v1.5-7B", "LLaVA-v1.5-7B (July 2024)"),
    "#ff7f0e": ("synth-caption", "Caption Aggregation", "Caption-based (LLaVA + Llama-3)"),
    "#2ca02c": ("clip-retrieve", "CLIP-L/14-336 + LLaVA"),
    "#d62728": ("mirage", "MIRAGE-8.3B", "MIRAGE (v1, Vicuna-7B)"),
    "#9467bd": ("mirage-query",),
    "#8c564b": ("openai:gpt-4o", "GPT-4o", "GPT-4o (low-res)", "GPT-4o (July 2024)"),
    "#e377c2": ("anthropic:claude-3-opus-20240229", "Claude-3 Opus"),
    "#17becf": ("gemini:gemini-1.5-pro", "Gemini-1.5-pro", "Gemini-1.5", "Gemini-1.5 (July 2024)"),
    "#7f7f7f": ("Qwen2-VL-7B-Instruct",),
    "#bcbd22": ("Phi-3-vision-128k-Instruct",),
    "#393b79": ("InternVL2-8B",),
    "#8c6d31": ("mPLUG-Owl3-8B",),
    "#000000": ("Detector Oracle (OWLv2)", "Question only (Llama-3)"),
}
MODEL_COLOURS = {name: colour for colour, names in _FAMILIES.items() for name in names}
# Models the table does not name (a backend spec given as a parameter) get one of these, by a hash of the name.
_SPARE_COLOURS = ("#637939", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")
PAPER_MARKERS = "s^Dv<>PX*p"
DODGE = 1.04  # our models' points step this factor apart along the log size axis
PARTIAL_LABEL = "hollow: some of the questions were over the model's limit"
LINE_STYLES = ("-", "--", ":", "-.")  # labels of one model (chapter 7's two CLIP retrievers)


def model_colour(name: str) -> str:
    """The colour of `name` (a model trained here, a backend spec, or one of the paper's models) in every figure."""
    return MODEL_COLOURS.get(name) or _SPARE_COLOURS[zlib.crc32(name.encode()) % len(_SPARE_COLOURS)]


def _paper_marker(name: str) -> str:
    return PAPER_MARKERS[zlib.crc32(name.encode()) % len(PAPER_MARKERS)]


def _legend_below(fig: Figure, axes: Iterable[plt.Axes]) -> None:
    """One legend for the whole figure, under its panels, with each label once."""
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        columns = min(len(entries), 3)
        fig.legend(entries.values(), entries.keys(), loc="outside lower center", ncol=columns, fontsize=FONT, frameon=False)


def haystack_grid(catalog: Catalog, question: dict, columns: int = 10, max_images: int = 50) -> Figure:
    """The first `max_images` images of a haystack in presentation order, needles outlined in red."""
    ids = question["image_ids"][:max_images]
    needles = set(question["needle_ids"])
    rows = int(np.ceil(len(ids) / columns))
    side = WIDTH / columns
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH, (side + 0.2) * rows + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for position, (ax, image_id) in enumerate(zip(axes.flat, ids)):
        with Image.open(catalog.image_path(image_id)) as image:
            pixels = np.asarray(image.convert("RGB"))
        ax.imshow(pixels, interpolation="nearest")
        ax.set_title(str(position), fontsize=FONT, color=NEEDLE_COLOUR if image_id in needles else "black")
        if image_id in needles:
            height, width = pixels.shape[:2]
            ax.add_patch(Rectangle((-0.5, -0.5), width, height, fill=False, linewidth=4, edgecolor=NEEDLE_COLOUR))
    shown = f" (first {len(ids)} of {question['size']})" if question["size"] > len(ids) else ""
    fig.suptitle(f"{question['question']}  answer: {question['answer']}{shown}", fontsize=FONT + 1)
    fig.tight_layout()
    return fig


def category_frequencies(catalog: Catalog) -> Figure:
    """How many images show each category (visible instances only), sorted by frequency."""
    counts = pd.DataFrame({"category": catalog.category_names, "images": (catalog.state == PRESENT).sum(axis=0)}).sort_values(
        "images", ascending=False
    )
    fig, ax = plt.subplots(figsize=(WIDTH, max(3.0, 0.16 * len(counts) + 0.8)))
    sns.barplot(data=counts, y="category", x="images", color="#4c72b0", ax=ax)
    ax.set_xlabel(f"images where the category is visible (area >= {catalog.min_area_frac:.0%} of the image)")
    ax.set_ylabel("category")
    ax.tick_params(axis="y", labelsize=FONT)
    fig.tight_layout()
    return fig


def question_statistics(questions: pd.DataFrame) -> Figure:
    """Answer balance per size, needle position over relative depth, and distractors holding the target."""
    fig, axes = plt.subplots(3, 1, figsize=(WIDTH, 8.4))
    sizes = sorted(set(questions["size"]))
    balance = questions.groupby("size")["answer"].apply(lambda a: (a == "yes").mean()).reset_index(name="yes fraction")
    sns.barplot(data=balance, x="size", y="yes fraction", color="#4c72b0", ax=axes[0])
    axes[0].axhline(0.5, color="black", linewidth=0.8, linestyle="--")
    axes[0].set_ylim(0, 1)
    axes[0].set_title("answer balance")
    axes[0].set_xticks(range(len(sizes)), [f"{size:,}" for size in sizes])
    axes[0].set_xlabel("haystack size (images)")
    large = questions[questions["size"] >= 10]
    deciles = pd.Series(
        [10 * p // size for size, positions in zip(large["size"], large["needle_positions"]) for p in positions], dtype=int
    )
    sns.histplot(deciles, bins=10, binrange=(0, 10), color="#55a868", ax=axes[1])
    axes[1].set_xlabel("needle depth decile (0 = first tenth of the haystack)")
    axes[1].set_ylabel("needles")
    axes[1].set_title("needle positions (sizes >= 10)")
    several = questions[questions["size"] > 1]
    sns.pointplot(data=several, x="size", y="distractor_target_frac", color="#c44e52", ax=axes[2])
    axes[2].set_xticks(range(several["size"].nunique()), [f"{size:,}" for size in sorted(set(several["size"]))])
    axes[2].set_xlabel("haystack size (images)")
    axes[2].set_ylabel("fraction of distractors")
    axes[2].set_title("distractors that hold the target")
    fig.tight_layout()
    return fig


def accuracy_vs_size(summary: pd.DataFrame, paper: pd.DataFrame | None = None) -> Figure:
    """Accuracy (95% band) against haystack size per model, one panel per question mode; the paper's
    numbers for the same mode dashed beside them, one legend under the panels.

    `summary` is `vhs.metrics.summarize` output (with `mode`), `paper` is `vhs.paper.paper_curve`
    rows (with `mode`). Sizes a model could not take at all are left out, as the paper's plots leave them
    out; a size it could take for only some questions is a hollow marker (its accuracy is over those);
    models that were not run are named in the axes. Our models' points are offset by a few percent along
    the size axis (`DODGE`), so that two models with equal accuracy both stay visible. The needles-only
    panel's x axis counts needles.
    """
    modes = sorted(set(summary["mode"]), key=lambda m: (MODE_ORDER.index(m) if m in MODE_ORDER else len(MODE_ORDER), m))
    fig, axes = plt.subplots(
        1, len(modes), figsize=(WIDTH, 4.2 if len(modes) == 1 else 3.9), squeeze=False, sharey=True, layout="constrained"
    )
    for ax, mode in zip(axes[0], modes):
        rows = summary[summary["mode"] == mode]
        _accuracy_panel(ax, rows, paper[paper["mode"] == mode] if paper is not None and len(paper) else None)
        ax.set_xlabel("needles (the haystack is the needles)" if mode == NEEDLES_ONLY else "haystack size (images)")
        if len(modes) > 1:
            ax.set_title(mode)
    if any(line.get_label() == "_partial" for ax in axes[0] for line in ax.get_lines()):
        axes[0][0].plot([], [], "o", color="#555555", markerfacecolor="white", label=PARTIAL_LABEL)
    _legend_below(fig, axes[0])
    return fig


def _accuracy_panel(ax: plt.Axes, summary: pd.DataFrame, paper: pd.DataFrame | None) -> None:
    ran = summary[~summary["not_run"]].dropna(subset=["accuracy"])
    groups = list(ran.groupby("model", sort=False))
    for index, (model, rows) in enumerate(groups):
        colour = model_colour(model)
        x = rows["size"] * DODGE ** (index - (len(groups) - 1) / 2)  # equal curves side by side, not hidden
        ax.fill_between(x, rows["ci_low"], rows["ci_high"], color=colour, alpha=0.15, linewidth=0)
        ax.plot(x, rows["accuracy"], marker="o", label=model, color=colour)
        partial = (rows["not_answerable"] > 0) if "not_answerable" in rows else rows["size"] < 0
        if partial.any():
            ax.plot(x[partial], rows["accuracy"][partial], "o", color=colour, markerfacecolor="white", label="_partial")
    if paper is not None and len(paper):
        for model, rows in paper.groupby("model", sort=False):
            ax.plot(
                rows["size"],
                rows["accuracy"],
                linestyle="--",
                marker=_paper_marker(model),
                markersize=5,
                color=model_colour(model),
                label=f"paper: {model}",
            )
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    sizes = sorted(set(summary["size"]) | (set(paper["size"]) if paper is not None else set()))
    shown = sizes if len(sizes) <= 6 else [size for size in sizes if size in (1, 2, 3, 5, 10, 20, 50, 100, 1000, 10000)]
    ax.set_xticks(shown, [f"{size:,}" if size < 1000 else f"{size // 1000}k" for size in shown], fontsize=FONT)
    ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy")
    _name_not_run(ax, summary.loc[summary["not_run"], "model"])


def _name_not_run(ax: plt.Axes, models: Iterable[str]) -> None:
    """Name the models that were not run inside the axes, so a figure drops none silently."""
    names = sorted(set(models))
    if names:
        inches = ax.figure.get_figwidth() * ax.get_position().width
        characters = int(inches * 72 / (FONT * 0.6))  # a 9-pt character is about 5.4 pt wide
        said = textwrap.fill("not run: " + ", ".join(names), characters, break_on_hyphens=False)
        ax.text(0.02, 0.03, said, transform=ax.transAxes, fontsize=FONT, color="#555555", va="bottom")


def accuracy_vs_position(summary: pd.DataFrame, paper: pd.DataFrame | None = None, columns: int = 3) -> Figure:
    """Accuracy against the needle's depth in the haystack (0 = first image, 1 = last), one panel per
    model and one line per haystack size with its 95% band; the paper's models in panels of their own,
    dashed; one legend of sizes under the panels.

    `summary` is `summarize(..., by=("model", "size", "depth"))`; `paper` holds the paper's
    position rows (`vhs.paper.paper_positions`). Models not run are named in the title.
    """
    panels = [(model, rows, "-") for model, rows in summary[~summary["not_run"]].groupby("model", sort=False)]
    if paper is not None and len(paper):
        panels += [(f"paper: {model}", rows, "--") for model, rows in paper.groupby("model", sort=False)]
    rows_needed = max(1, -(-len(panels) // columns))
    fig, axes = plt.subplots(
        rows_needed,
        columns,
        figsize=(WIDTH, 2.3 * rows_needed + 0.9),
        squeeze=False,
        sharey=True,
        sharex=True,
        layout="constrained",
    )
    sizes = sorted(set(summary["size"]) | (set(paper["size"]) if paper is not None and len(paper) else set()))
    colours = dict(zip(sizes, sns.color_palette("viridis", len(sizes))))
    for ax, (title, rows, style) in zip(axes.flat, panels):
        for size, line in rows.dropna(subset=["accuracy"]).groupby("size"):
            if "ci_low" in line:
                ax.fill_between(line["depth"], line["ci_low"], line["ci_high"], color=colours[size], alpha=0.12, linewidth=0)
            ax.plot(
                line["depth"],
                line["accuracy"],
                linestyle=style,
                marker="o",
                markersize=3,
                color=colours[size],
                label=f"N={size:,}",
            )
        ax.set_title(title, fontsize=FONT, color=model_colour(title.removeprefix("paper: ")))
        ax.set_ylim(0, 1.02)
        ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in axes[-1, :]:
        ax.set_xlabel("needle depth (0 first, 1 last)")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    not_run = sorted(set(summary.loc[summary["not_run"], "model"]))
    fig.suptitle("accuracy by needle position" + (f" (not run: {', '.join(not_run)})" if not_run else ""), fontsize=FONT + 1)
    _legend_below(fig, axes.flat)
    return fig


def cost_vs_size(costs: pd.DataFrame, not_run: Iterable[str] = ()) -> Figure:
    """Seconds per question and LM input tokens per question against haystack size, one line per
    model (its mean over the answered questions); the models in `not_run` are named in the axes.

    `costs` has `model`, `size`, `seconds` and `tokens` (one row per answered question).
    """
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6), layout="constrained")
    _name_not_run(axes[0], not_run)
    for ax, column, label in zip(axes, ("seconds", "tokens"), ("seconds per question", "LM input tokens per question")):
        means = costs.dropna(subset=[column]).groupby(["model", "size"], sort=False)[column].mean().reset_index()
        for model, rows in means.groupby("model", sort=False):
            ax.plot(rows["size"], rows[column], marker="o", color=model_colour(model), label=model)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("haystack size (images)")
        ax.set_ylabel(label)
    _legend_below(fig, axes)
    return fig


def run_overview(ledger: pd.DataFrame) -> Figure:
    """What was run: per chapter and model, the questions answered, not answerable (over a limit),
    failed, and not run, as stacked horizontal bars (`vhs.book.read_ledger` rows)."""
    parts = {"answered": "#4c72b0", "not_answerable": "#dd8452", "errors": "#c44e52", "not_run": "#bbbbbb"}
    rows = ledger.sort_values(["chapter", "model"]).reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.3 * max(len(rows), 4) + 1.2), layout="constrained")
    left = np.zeros(len(rows))
    for column, colour in parts.items():
        values = rows[column].to_numpy(dtype=float) if len(rows) else left
        ax.barh(np.arange(len(rows)), values, left=left, color=colour, label=column.replace("_", " "))
        left += values
    labels = [f"ch. {str(c).split()[0]} · {m}" for c, m in zip(rows["chapter"], rows["model"])]  # the number names the chapter
    ax.set_yticks(np.arange(len(rows)), labels, fontsize=FONT)
    ax.invert_yaxis()
    ax.set_xlabel("questions")
    _legend_below(fig, [ax])
    return fig


def mirage_training(curves: dict[str, list[float]] | None, title: str, smooth: int = 20) -> Figure:
    """A MIRAGE checkpoint's `curve.json` on the run's own step axis: each stage's loss (captions, then the
    retriever alone, then co-training, one after the other), the retriever's and the LM's losses, and the
    held-out recall@1; moving averages over `smooth` steps. None: a figure that says no checkpoint exists."""
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 3.0), layout="constrained")
    fig.suptitle(title, fontsize=FONT + 1)
    if not curves:
        for ax in axes:
            ax.axis("off")
        axes[1].text(0.5, 0.5, "no checkpoint trained on this profile", ha="center", fontsize=FONT)
        return fig
    stages = [name for name in ("captions", "retrieval", "cotrain") if curves.get(name)]
    starts = np.cumsum([0] + [len(curves[name]) for name in stages])

    def draw(ax: plt.Axes, values: list[float], start: int, label: str) -> None:
        series = pd.Series(values)
        ax.plot(start + np.arange(len(series)), series.rolling(min(smooth, len(series)), min_periods=1).mean(), label=label)

    for name, start in zip(stages, starts):
        draw(axes[0], curves[name], start, name)
    retriever_start = starts[stages.index("retrieval")] if "retrieval" in stages else 0
    draw(axes[1], curves.get("retriever", []), retriever_start, "retriever")
    draw(axes[1], curves.get("lm", []), starts[-2] if len(stages) > 1 else 0, "LM")
    axes[2].plot(curves.get("recall_step", []), curves.get("recall@1", []), marker="o", color="#2ca02c")
    for ax, label in zip(axes, ("loss of the stage", "loss", "held-out recall@1")):
        for boundary in starts[1:-1]:
            ax.axvline(boundary, color="#999999", linewidth=0.8, linestyle="--")
        ax.set_xlabel("training step")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=FONT, frameon=False)
    axes[1].legend(fontsize=FONT, frameon=False)
    axes[2].set_ylim(0, 1.02)
    return fig


def recall_vs_size(recall: pd.DataFrame, models: Mapping[str, str] | None = None, not_run: Iterable[str] = ()) -> Figure:
    """Needle recall@k (95% band) against haystack size, one line per retriever, one panel per k.

    `models` maps a retriever's label to the model it is (its colour); labels of one model differ in line
    style. `recall` is `vhs.eval.recall.needle_recall` output; the retrievers in `not_run` are named in the axes.
    """
    models = models or {}
    ks = sorted(recall["k"].unique()) if len(recall) else [1]
    fig, axes = plt.subplots(1, len(ks), figsize=(WIDTH, 3.8), squeeze=False, sharey=True, layout="constrained")
    line_style, per_model = {}, Counter()
    for label in dict.fromkeys(recall["retriever"]):
        model = models.get(label, label)
        line_style[label] = LINE_STYLES[per_model[model] % len(LINE_STYLES)]
        per_model[model] += 1
    for ax, k in zip(axes[0], ks):
        for label, rows in recall[recall["k"] == k].groupby("retriever", sort=False):
            colour = model_colour(models.get(label, label))
            ax.fill_between(rows["size"], rows["ci_low"], rows["ci_high"], color=colour, alpha=0.12, linewidth=0)
            ax.plot(rows["size"], rows["recall"], marker="o", linestyle=line_style[label], color=colour, label=label)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"needle recall@{k}")
        ax.set_xlabel("haystack size (images)")
        ax.set_ylabel(f"recall@{k}")
    _name_not_run(axes[0][0], not_run)
    _legend_below(fig, axes[0])
    return fig


def mirage_diagram() -> Figure:
    """MIRAGE's data flow as boxes and arrows, with the synth sizes."""
    fig = plt.figure(figsize=(WIDTH, 2.4))
    ax = fig.add_axes((0, 0, 1, 1))  # the whole figure: the boxes' text needs every inch of the column
    ax.axis("off")
    boxes = [
        "N images",
        "frozen\nencoder\n64 patches",
        "Q-Former\nK=8\nqueries",
        "projector\nK tokens\nper image",
        "retriever\n1 logit\nper image",
        "keep top-k,\nor the best\nif none\n>= 0.5",
        "tiny LM\nkept tokens\n+ question",
    ]
    width, gap = 1.2, 0.3
    for index, text in enumerate(boxes):
        x = index * (width + gap)
        ax.add_patch(Rectangle((x, 0.2), width, 0.8, facecolor="#dce6f2", edgecolor="#4c72b0"))
        ax.text(x + width / 2, 0.6, text, ha="center", va="center", fontsize=FONT)
        if index:
            ax.annotate("", xy=(x, 0.6), xytext=(x - gap, 0.6), arrowprops={"arrowstyle": "->"})
    ax.text(
        2 * (width + gap) + width / 2,
        0.05,
        "query mode: the queries also read the question",
        ha="center",
        fontsize=FONT,
        style="italic",
    )
    ax.text(4 * (width + gap) + width / 2, 1.08, "question", ha="center", fontsize=FONT, style="italic")
    ax.set_xlim(-0.05, len(boxes) * (width + gap) - gap + 0.05)
    ax.set_ylim(0, 1.2)
    return fig
