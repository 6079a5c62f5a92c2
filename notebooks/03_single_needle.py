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
# # Single-needle questions
#
# Accuracy against haystack size for every model this profile runs, on the same single-needle
# questions. On the synth profile these are the models trained here (`make models`): the LLaVA-style
# full-context model, caption-then-LLM, CLIP-style retrieval feeding the LLaVA-style reader, and
# MIRAGE; on the coco profile, each stands for its real counterpart (LLaVA-v1.5-7B for synth-llava,
# LLaVA captions + Llama-3 for synth-caption, CLIP ViT-L/14-336 feeding LLaVA for clip-retrieve, the
# released MIRAGE-8.3B for mirage) or is marked not run with the reason. A size a model cannot take at all
# (its context window) is reported not answerable and drawn as no point, as the paper leaves such
# sizes out; a size it can take for only some questions is a hollow marker, its accuracy over those.
#
# The questions of this build: {glue:md}`question-source`.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "1,2,3,5,10,20,50,100,1000,10000"  # haystack sizes
per_size = 50  # questions per size (even: yes/no pairs)
source = "generated"  # generated (built here from seed) or official (the released files: `vhs data vhs-official`)
models = "synth-llava,synth-caption,clip-retrieve,mirage"  # models trained here (or their coco counterparts), or backend specs
paper_models = "GPT-4o,Gemini-1.5-pro,MIRAGE-8.3B,Caption Aggregation"  # the paper's curves drawn beside ours
runs = "runs"  # where `make models` put the synth checkpoints

# %% tags=["hide-input"]
import pandas as pd

from vhs import findings, page, plots
from vhs.book import chapter_questions, chapter_results, record_finding
from vhs.data.profiles import load_profile_catalog
from vhs.metrics import summarize
from vhs.paper import paper_curve, paper_sources

catalog = load_profile_catalog(profile)
size_list = tuple(int(s) for s in str(sizes).split(","))
questions, source_note = chapter_questions(catalog, "single", size_list, per_size, seed, source)
page.text("question-source", source_note)
results = chapter_results("3 single-needle", profile, models, questions, runs)
summary = summarize(results)
paper = pd.concat([paper_curve(name) for name in str(paper_models).split(",")], ignore_index=True)
page.text("paper-sources", paper_sources(paper))
page.text("finding-1", record_finding(findings.accuracy_falls(results), profile))
page.text("finding-2", record_finding(findings.context_limits(results, profile), profile))
page.figure("accuracy", plots.accuracy_vs_size(summary, paper))

# %% [markdown]
# ## Accuracy against haystack size
#
# ```{glue:figure} accuracy
# :name: fig-single-accuracy
#
# Single-needle accuracy against haystack size. Solid, with 95% Wilson bands: ours, this profile's
# models on its images. Dashed, one marker per model: the paper's numbers on COCO
# ({glue:md}`paper-sources`), its runs of its models, not ours; a paper model shares the colour of the
# model that stands for it here. Hollow: some questions of that size were over the model's limit.
# 0.5 (dotted) is chance.
# ```

# %% tags=["hide-input"]
columns = ["model", "size", "questions", "scored", "accuracy", "ci_low", "ci_high", "not_answerable"]
page.table(summary[~summary["not_run"]][columns], percent=("accuracy", "ci_low", "ci_high", "not_answerable"))

# %% [markdown]
# ## Findings
# {glue:md}`finding-1`
#
# {glue:md}`finding-2`
