"""The paper's published numbers (typed in from its tables and figures), for plotting beside ours.

`resources/paper_results.csv` holds one row per model x task x size [x position] with its source;
`approx=yes` rows were read off the ICLR plots (about +-0.5 points). They are never our runs.
"""

from importlib import resources

import pandas as pd

from vhs.data.questions import NEEDLES_ONLY
from vhs.metrics import bucket_depth, index_depth

# Our model specs -> the paper's names for the same models.
PAPER_NAMES: dict[str, str] = {
    "openai:gpt-4o": "GPT-4o",
    "anthropic:claude-3-opus-20240229": "Claude-3 Opus",
    "gemini:gemini-1.5-pro": "Gemini-1.5-pro",
}
# Tokens per image in the LM's context, as the paper and its released code give them (CLIP ViT-L/14-336's patches
# against MIRAGE's Q-Former queries).
PAPER_IMAGE_TOKENS: dict[str, int] = {"LLaVA-v1.5-7B": 576, "MIRAGE-8.3B": 32}
# The paper's task names -> the `mode` of our results for the same questions.
TASK_MODES = {"multi_needles_only": NEEDLES_ONLY}


def paper_results() -> pd.DataFrame:
    """All published numbers: source, task, model, size, size_label, position, accuracy, approx, note.

    `size` is numeric; the needles-only setting, which the tables label "oracle", has no size and
    keeps its label in `size_label`.
    """
    with resources.files("vhs.resources").joinpath("paper_results.csv").open() as handle:
        table = pd.read_csv(handle, dtype={"size": str})
    table["size_label"] = table["size"]
    table["size"] = pd.to_numeric(table["size"], errors="coerce").astype("Int64")
    return table


def paper_curve(model_spec: str, task: str = "single") -> pd.DataFrame:
    """The paper's accuracy-by-size rows for one of our model specs (empty if the paper lacks it),
    with the `mode` our results use for the same questions (`multi_needles_only` -> `needles only`)."""
    table = paper_results()
    name = PAPER_NAMES.get(model_spec, model_spec)
    rows = table[(table["model"] == name) & (table["task"] == task)].dropna(subset=["accuracy", "size"])
    return rows.assign(mode=TASK_MODES.get(task, task))


def paper_value(model: str, task: str, size: str) -> float:
    """One published accuracy: the paper's `model` on `task` at `size` (its label: "10", or "oracle")."""
    table = paper_results()
    rows = table[(table["model"] == model) & (table["task"] == task) & (table["size_label"] == size)].dropna(subset=["accuracy"])
    if rows.empty:
        raise KeyError(f"the paper has no {model} / {task} / {size}")
    return float(rows["accuracy"].iloc[0])


def paper_sources(rows: pd.DataFrame) -> str:
    """Where `rows` of the paper's numbers come from, for a caption: each source (paper version and figure
    or table) with the models read from it, e.g. "ICLR2025 Fig.2 (digitized): GPT-4o; arXiv v1 Table 1: …"."""
    if rows.empty:
        return "none"
    return "; ".join(
        f"{source}: {', '.join(dict.fromkeys(group['model']))}" for source, group in rows.groupby("source", sort=False)
    )


JULY_POSITIONS = "arXiv v1 position heatmap"  # the July 2024 version's study: LLaVA-v1.5-7B, GPT-4o, Gemini-1.5
JULY = " (July 2024)"  # added to a model's name where the July version's numbers stand beside the ICLR ones


def paper_positions(source: str = "ICLR2025 Fig.4") -> pd.DataFrame:
    """The paper's needle-position accuracies from one source: `size`, `position` (the needle's
    index, or its depth bucket, a tenth of the haystack, above 10 images, as `note` says), `depth`
    (0 first … 1 last, as `vhs.metrics.needle_depth`), `accuracy`, `model`."""
    table = paper_results()
    rows = table[(table["task"] == "position") & table["source"].str.startswith(source)].dropna(subset=["accuracy", "size"])
    rows = rows.assign(position=rows["position"].astype(int), size=rows["size"].astype(int))
    by_bucket = rows["note"].fillna("").str.startswith("depth bucket")
    return rows.assign(depth=bucket_depth(rows["position"]).where(by_bucket, index_depth(rows["position"], rows["size"])))


CAPTION_BASELINES = ("Caption-based (LLaVA + Llama-3)", "Caption Aggregation")  # July 2024's name, then ICLR's
COMMERCIAL = ("GPT-4o", "GPT-4o (low-res)", "Gemini-1.5-pro", "Gemini-1.5", "Claude-3 Opus")


def caption_against_commercial(source: str) -> str:
    """Where one source's caption baseline was above each commercial model, on the sizes both have there:
    e.g. "above Claude-3 Opus at oracle, 5, 10 (of 3 sizes); …"."""
    table = paper_results()
    rows = table[table["source"] == source].dropna(subset=["accuracy"])
    caption = rows[rows["model"].isin(CAPTION_BASELINES)].set_index(["task", "size_label"])["accuracy"]
    parts = []
    for model in (m for m in COMMERCIAL if m in set(rows["model"])):
        theirs = rows[rows["model"] == model].set_index(["task", "size_label"])["accuracy"]
        common = caption.index.intersection(theirs.index)
        above = [size for task, size in common if caption[(task, size)] > theirs[(task, size)]]
        parts.append(f"above {model} at {', '.join(above) if above else 'no size'} (of {len(common)} sizes)")
    return "; ".join(parts) if parts else "beside no commercial model"
