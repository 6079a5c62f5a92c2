# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Multi-needle questions
#
# Two or three images show the anchor, and the question asks whether *all* of them, or *any* of
# them, show the target: the model must find every needle and combine what it sees. As in the
# paper, two settings: **needles only** (the haystack is the needles themselves: 1, 2 or 3 images,
# the single-image question standing for 1) and haystacks of 5 to 10,000 images. Sizes below 5
# given in `sizes` are left to the needles-only setting, as in the paper. MIRAGE and the CLIP-style
# retriever keep their top 3 images on these questions.
#
# The haystack questions of this build: {glue:md}`question-source`. The needles-only questions
# are always generated here (seed and count as above): the release holds no such file.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "5,10,20,50,100,1000,10000"  # haystack sizes (5 and up)
per_size = 40  # questions per size (even: yes/no pairs)
source = "generated"  # generated (built here from seed) or official (the released files: `vhs data vhs-official`)
models = "synth-llava,synth-caption,clip-retrieve,mirage"  # models trained here (or their coco counterparts), or backend specs
paper_models = "GPT-4o,Gemini-1.5-pro,MIRAGE-8.3B,Caption Aggregation"  # the paper's curves drawn beside ours
runs = "runs"  # where `make models` put the synth checkpoints

# %% tags=["hide-input"]
import pandas as pd

from vhs import findings, page, plots
from vhs.book import chapter_questions, chapter_results, record_finding
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.metrics import summarize
from vhs.paper import paper_curve, paper_sources

catalog = load_profile_catalog(profile)
haystacks = tuple(s for s in (int(s) for s in str(sizes).split(",")) if s >= 5)
in_haystacks, source_note = chapter_questions(catalog, "multi", haystacks, per_size, seed, source) if haystacks else ([], "none")
questions = [*qs.needles_only(catalog, (1, 2, 3), per_size, seed), *in_haystacks]
page.text("question-source", source_note)
results = chapter_results("4 multi-needle", profile, models, questions, runs)
summary = summarize(results)
names = str(paper_models).split(",")
paper = pd.concat([paper_curve(name, task) for task in ("multi_needles_only", "multi") for name in names], ignore_index=True)
page.text("paper-sources", paper_sources(paper))
page.text("finding", record_finding(findings.multi_harder(results), profile))
page.figure("accuracy", plots.accuracy_vs_size(summary, paper))

# %% [markdown]
# ## Accuracy against the number of images
# With 3 images or fewer, a retriever that keeps its top 3 keeps them all: on the needles-only
# questions the CLIP-style retriever then answers exactly as its reader, synth-llava, does, and the
# two curves coincide (they are drawn side by side).
#
# ```{glue:figure} accuracy
# :name: fig-multi-accuracy
#
# Multi-needle accuracy. Left, needles only: the haystack is 1, 2 or 3 needles and nothing else.
# Right, haystacks with distractors, against their size. Solid, with 95% Wilson bands: ours. Dashed,
# one marker per model: the paper's numbers on COCO ({glue:md}`paper-sources`), not our runs.
# Hollow: some questions of that size were over the model's limit; a size no question of which
# fitted is not drawn. 0.5 (dotted) is chance.
# ```

# %% tags=["hide-input"]
columns = ["model", "mode", "size", "questions", "scored", "accuracy", "ci_low", "ci_high", "not_answerable"]
page.table(summary[~summary["not_run"]][columns], percent=("accuracy", "ci_low", "ci_high", "not_answerable"))

# %% [markdown]
# ## "All" against "any"
# The same haystacks split by quantifier: "all" needs every needle checked, "any" only one that
# holds the target.

# %% tags=["hide-input"]
by_quantifier = summarize(results[results["quantifier"].notna()], by=("model", "quantifier"))
page.table(
    by_quantifier[~by_quantifier["not_run"]][["model", "quantifier", "scored", "accuracy", "ci_low", "ci_high"]],
    percent=("accuracy", "ci_low", "ci_high"),
)

# %% [markdown]
# ## Finding
# {glue:md}`finding`
