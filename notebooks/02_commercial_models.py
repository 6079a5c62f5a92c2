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
# # Commercial models
#
# The paper evaluates GPT-4o, Claude 3 Opus and Gemini 1.5 Pro. Each is queried here through its
# official SDK (`openai`, `anthropic`, and `google-genai`, the maintained successor of
# `google-generativeai`) when its API key is set in the environment (`OPENAI_API_KEY`,
# `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`); a model without a key is reported **not run**. Every
# answer is cached, so re-running this chapter never pays twice. The defaults are deliberately
# small (`per_size` questions at each size, at most `max_requests` calls per model): the README
# gives the exact number of requests, images and estimated tokens they cost.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "1,2,3,5,10,20,50,100"  # haystack sizes
per_size = 10  # questions per size (even: yes/no pairs)
models = "openai:gpt-4o,anthropic:claude-3-opus-20240229,gemini:gemini-1.5-pro"  # backend specs
max_requests = 200  # at most this many paid calls per model
runs = "runs"  # where `make models` put the synth checkpoints (if a model trained here is named)

# %%
import pandas as pd

from vhs import plots
from vhs.book import chapter_results
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.eval.runner import RunOptions
from vhs.metrics import summarize
from vhs.paper import paper_curve

catalog = load_profile_catalog(profile)
size_list = tuple(int(s) for s in str(sizes).split(","))
questions = list(qs.build_question_set(catalog, "single", size_list, per_size, seed, progress=False))
results = chapter_results("2 commercial models", profile, models, questions, runs, RunOptions(max_requests=max_requests))
summary = summarize(results)

# %% [markdown]
# ## What was run
# One row per model: how many questions were answered, how many were over the provider's limits,
# and why a model was not run.

# %%
status = results.pivot_table(index="model", columns="status", values="qid", aggfunc="count", fill_value=0)
status["run"] = ["not run (no API key)" if row.get("not_run", 0) == row.sum() else "run" for _, row in status.iterrows()]
status

# %% [markdown]
# ## Accuracy against haystack size
# Our strict accuracy with Wilson 95% intervals; the paper's numbers for the same models
# (ICLR 2025, Fig. 2, COCO images) dashed in grey — they are the paper's runs, not ours, and on the
# synth profile they describe a different image domain.

# %%
paper = pd.concat([paper_curve(model) for model in str(models).split(",")], ignore_index=True)
plots.accuracy_vs_size(summary, paper)
# %%
summary[
    ["model", "size", "questions", "scored", "accuracy", "ci_low", "ci_high", "compliance", "not_answerable", "not_run"]
].round(3)
