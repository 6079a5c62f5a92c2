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
# # Needle position
#
# The paper's lost-in-the-middle study: every single-needle question is asked once with its needle
# at each position of its haystack, so that position is the only thing that changes. Depth 0 is the
# first image, 1 the last. As in the paper, a haystack of more than 10 images gets its needle once
# in each tenth of its depth (in the middle of that tenth). The paper
# reports drops of up to 26.5% (LLaVA, needle not last) and 28.5% (proprietary models, needle not
# first). Each question is asked at every position, so the intervals are clustered by question
# (`vhs.metrics.clustered_interval`). By construction, MIRAGE and the CLIP-style retriever cannot
# depend on position on single-needle questions: each image is scored on its own and the LM sees
# only the one kept; a position effect there would be a bug.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "2,3,5,10,20,100"  # haystack sizes (2 and up)
per_size = 20  # questions per size (even: yes/no pairs)
models = "synth-llava,synth-caption,clip-retrieve,mirage"  # models trained here (or their coco counterparts), or backend specs
runs = "runs"  # where `make models` put the synth checkpoints

# %%
from vhs import plots
from vhs.book import chapter_results
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.eval.runner import at_each_position
from vhs.metrics import needle_depth, summarize
from vhs.paper import paper_positions

catalog = load_profile_catalog(profile)
size_list = tuple(s for s in (int(s) for s in str(sizes).split(",")) if s >= 2)
questions = at_each_position(qs.build_question_set(catalog, "single", size_list, per_size, seed, progress=False))
results = chapter_results("5 needle position", profile, models, questions, runs)
results["depth"] = needle_depth(results)
summary = summarize(results, by=("model", "size", "depth"))

# %% [markdown]
# ## Accuracy against needle depth
# One panel per model, one line per haystack size; the paper's models (ICLR 2025, Fig. 4, COCO
# images, exact printed values) dashed in panels of their own: the paper's runs, not ours.

# %%
plots.accuracy_vs_position(summary, paper_positions())
# %% [markdown]
# ## The largest drop from the best position
# Per model and size: accuracy at the best and the worst depth, and the relative drop
# (1 − worst / best), the measure the paper quotes.

# %%
answered = summary.dropna(subset=["accuracy"])
drops = answered.groupby(["model", "size"])["accuracy"].agg(best="max", worst="min")
drops["relative_drop"] = 1 - drops["worst"] / drops["best"]
drops.round(3)
