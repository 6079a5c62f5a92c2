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
# in each tenth of its depth; where in that tenth is our choice (its middle image), as are the
# sizes and the 20 questions per size of the defaults, sized to run on a laptop. The paper
# reports drops of up to 26.5% (LLaVA, needle not last) and 28.5% (proprietary models, needle not
# first). Each question is asked at every position: a point of the figure holds each question once
# (its interval is Wilson's), while a figure pooled over depths counts a question several times and
# clusters its interval by question (`vhs.metrics.clustered_interval`). By construction, MIRAGE and
# the CLIP-style retriever cannot depend on position on single-needle questions: each image is scored on its own and the LM sees
# only the one kept; a position effect there would be a bug.
#
# The questions of this build, before each is placed at every position: {glue:md}`question-source`.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "2,3,5,10,20,100"  # haystack sizes (2 and up)
per_size = 20  # questions per size (even: yes/no pairs)
source = "generated"  # generated (built here from seed) or official (the released files: `vhs data vhs-official`)
models = "synth-llava,synth-caption,clip-retrieve,mirage"  # models trained here (or their coco counterparts), or backend specs
runs = "runs"  # where `make models` put the synth checkpoints

# %% tags=["hide-input"]
import pandas as pd

from vhs import findings, page, plots
from vhs.book import chapter_questions, chapter_results, record_finding
from vhs.data.profiles import load_profile_catalog
from vhs.eval.runner import at_each_position
from vhs.metrics import needle_depth, noise_drop, summarize
from vhs.paper import JULY, JULY_POSITIONS, paper_positions, paper_sources

catalog = load_profile_catalog(profile)
size_list = tuple(s for s in (int(s) for s in str(sizes).split(",")) if s >= 2)
base, source_note = chapter_questions(catalog, "single", size_list, per_size, seed, source)
questions = at_each_position(base)
page.text("question-source", source_note)
results = chapter_results("5 needle position", profile, models, questions, runs)
results["depth"] = needle_depth(results)
summary = summarize(results, by=("model", "size", "depth"))
july = paper_positions(JULY_POSITIONS)
paper = pd.concat([paper_positions(), july.assign(model=july["model"] + JULY)], ignore_index=True)
page.text("paper-sources", paper_sources(paper))
page.text("finding", record_finding(findings.position_matters(results), profile))
page.value("questions-per-size", per_size)
page.figure("position", plots.accuracy_vs_position(summary, paper))

# %% [markdown]
# ## Accuracy against needle depth
#
# ```{glue:figure} position
# :name: fig-position
#
# Accuracy against the needle's depth (0 first image, 1 last), one panel per model and one line per
# haystack size. Ours (solid, {glue:text}`questions-per-size` questions per size, each asked at
# every depth): 95% Wilson bands per point. The paper's panels (dashed, titled "paper:"): its
# numbers on COCO ({glue:md}`paper-sources`), not our runs; those marked "(July 2024)" are the first
# version's study, which alone has LLaVA-v1.5-7B. 0.5 (dotted) is chance.
# ```
#
# ## The largest drop from the best position
# Per model and size: accuracy at the best and the worst depth, and the relative drop
# (1 − worst / best), the measure the paper quotes. Beside it, the drop that noise alone reaches 5% of
# the time at that sample (`vhs.metrics.noise_drop`: as many depths, as many questions each, every
# depth at the model's mean accuracy, answers independent): a drop below it is what chance gives. As
# each question is asked at every depth, the real noise is smaller; the finding below is the paired test.

# %% tags=["hide-input"]
answered = summary.dropna(subset=["accuracy"])
drops = (
    answered.groupby(["model", "size"])
    .agg(best=("accuracy", "max"), worst=("accuracy", "min"), mean=("accuracy", "mean"), depths=("accuracy", "size"))
    .join(answered.groupby(["model", "size"])["scored"].min().rename("questions"))
    .reset_index()
)
drops["relative_drop"] = 1 - drops["worst"] / drops["best"]
drops["noise_alone_95"] = [noise_drop(int(r.depths), int(r.questions), r.mean) for r in drops.itertuples()]
columns = ["model", "size", "questions", "best", "worst", "relative_drop", "noise_alone_95"]
page.table(drops[columns], percent=("best", "worst", "relative_drop", "noise_alone_95"))

# %% [markdown]
# ## Finding
# {glue:md}`finding`
