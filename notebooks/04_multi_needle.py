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

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "5,10,20,50,100,1000,10000"  # haystack sizes (5 and up)
per_size = 40  # questions per size (even: yes/no pairs)
models = "synth-llava,synth-caption,clip-retrieve,mirage"  # models trained here (or their coco counterparts), or backend specs
paper_models = "GPT-4o,Gemini-1.5-pro,MIRAGE-8.3B,Caption Aggregation"  # the paper's curves drawn beside ours
runs = "runs"  # where `make models` put the synth checkpoints

# %%
import pandas as pd

from vhs import plots
from vhs.book import chapter_results
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.metrics import summarize
from vhs.paper import paper_curve

catalog = load_profile_catalog(profile)
haystacks = tuple(s for s in (int(s) for s in str(sizes).split(",")) if s >= 5)
questions = [
    *qs.needles_only(catalog, (1, 2, 3), per_size, seed),
    *(qs.build_question_set(catalog, "multi", haystacks, per_size, seed, progress=False) if haystacks else ()),
]
results = chapter_results("4 multi-needle", profile, models, questions, runs)
summary = summarize(results)

# %% [markdown]
# ## Accuracy against the number of images
# Left, needles only: 1, 2 or 3 images, every one a needle. Right, haystacks with distractors.
# Wilson 95% bands; the paper's numbers (ICLR 2025, Fig. 3A and 3B, COCO images) dashed in grey:
# the paper's runs, not ours. A size a model cannot take is not drawn.

# %%
names = str(paper_models).split(",")
paper = pd.concat([paper_curve(name, task) for task in ("multi_needles_only", "multi") for name in names], ignore_index=True)
plots.accuracy_vs_size(summary, paper)
# %%
summary[["model", "mode", "size", "questions", "scored", "accuracy", "ci_low", "ci_high", "not_answerable", "not_run"]].round(3)

# %% [markdown]
# ## "All" against "any"
# The same haystacks split by quantifier: "all" needs every needle checked, "any" only one that
# holds the target.

# %%
by_quantifier = summarize(results[results["quantifier"].notna()], by=("model", "quantifier"))
by_quantifier[["model", "quantifier", "scored", "accuracy", "ci_low", "ci_high"]].round(3)
