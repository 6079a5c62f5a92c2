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
# The paper evaluates GPT-4o and Gemini 1.5 Pro (ICLR 2025; its July 2024 version also Claude 3
# Opus). This chapter lists them beside today's models a researcher would try first: GPT-5, Claude
# Sonnet 4.5 and Opus 4.5, Gemini 2.5 Pro, and Grok 4 through OpenRouter. Each is queried through its
# official SDK (`openai`, `anthropic`, and `google-genai`, the maintained successor of
# `google-generativeai`; OpenRouter through `openai`) when its API key is set in the environment
# (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`, `GEMINI_API_KEY`, `OPENROUTER_API_KEY`); a model without a
# key is reported **not run**, and nothing is sent. Every answer is cached, so re-running this
# chapter never pays twice. The defaults are deliberately small (`per_size` questions at each size,
# at most `max_requests` calls and `max_usd` dollars per model); the tables below say what they would
# send and cost, and `vhs eval` says it again before its first paid call.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "1,2,3,5,10,20,50,100"  # haystack sizes
per_size = 10  # questions per size (even: yes/no pairs)
models = (  # backend specs: the paper's three, then today's
    "openai:gpt-4o,anthropic:claude-3-opus-20240229,gemini:gemini-1.5-pro,"
    "openai:gpt-5,anthropic:claude-sonnet-4-5,anthropic:claude-opus-4-5,gemini:gemini-2.5-pro,openrouter:x-ai/grok-4"
)
max_requests = 200  # at most this many paid calls per model
max_usd = 20.0  # and at most this many dollars per model (list price; each call counted at its worst case)
runs = "runs"  # where `make models` put the synth checkpoints (if a model trained here is named)

# %% tags=["hide-input"]
import pandas as pd

from vhs import findings, page, plots
from vhs.book import chapter_results, commercial_models, not_run_note
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.eval.estimate import PAPER_PER_SIZE
from vhs.eval.runner import RunOptions
from vhs.metrics import summarize
from vhs.paper import paper_curve, paper_sources

catalog = load_profile_catalog(profile)
size_list = tuple(int(s) for s in str(sizes).split(","))
questions = list(qs.build_question_set(catalog, "single", size_list, per_size, seed, progress=False))
options = RunOptions(max_requests=max_requests, max_usd=max_usd)
results = chapter_results("2 commercial models", profile, models, questions, runs, options)
summary = summarize(results)
limits, costs = commercial_models(models, questions, size_list)
page.value("paper-per-size", f"{PAPER_PER_SIZE:,}")
paper = pd.concat([paper_curve(model) for model in str(models).split(",")], ignore_index=True)
page.text("not-run", not_run_note(results) or "Every model of this chapter was run.")
page.text("paper-sources", paper_sources(paper))
page.text("finding", findings.accuracy_falls(results, "2").markdown())
page.figure("accuracy", plots.accuracy_vs_size(summary, paper))

# %% [markdown]
# ## What was run
# {glue:md}`not-run`
#
# ## Accuracy against haystack size
#
# ```{glue:figure} accuracy
# :name: fig-commercial-accuracy
#
# Single-needle accuracy against haystack size. Solid, with 95% Wilson bands: our runs of the models
# named in `models`, on this profile's images (a model not run is named in the panel). Dashed: the
# paper's numbers for the same models, on COCO ({glue:md}`paper-sources`), not our runs; on the synth
# profile they describe a different image domain. 0.5 (dotted) is chance.
# ```

# %% tags=["hide-input"]
ran = summary[~summary["not_run"]]
columns = ["model", "size", "questions", "scored", "accuracy", "ci_low", "ci_high", "compliance", "not_answerable"]
page.table(ran[columns], percent=("accuracy", "ci_low", "ci_high", "compliance", "not_answerable")) if len(ran) else None

# %% [markdown]
# ## The models, their limits and their settings
#
# How many images one request can carry follows from each provider's declared limits (images per
# request, request bytes; named constants in each backend file), for the images of this profile as
# `vhs eval` encodes them and for COCO-sized ones (640 × 480 pixels, with the mean bytes of a COCO
# val2017 file). A reasoning model (*thinks*) gets room to think by default (its output cap); the
# options a spec can add to change that are listed.

# %% tags=["hide-input"]
page.table(limits) if len(limits) else None

# %% [markdown]
# ## What a run costs
#
# Each model's list price per million tokens, with the date it held (`vhs.models.prices`), and what
# this chapter's run (its questions, on this profile's images) and a paper-sized run
# ({glue:text}`paper-per-size` questions at each of this chapter's sizes, on COCO-sized images, those
# over the model's limits not sent) would cost. Input dollars follow the provider's image-token
# formula; output dollars are an upper bound, every reply at its output cap, since what a reasoning
# model will think is not known before it is paid for. The batch APIs (`vhs eval --batch`) halve both.

# %% tags=["hide-input"]
page.table(costs) if len(costs) else None

# %% [markdown]
# ## Finding
# {glue:md}`finding` (Chapter 3 tests the same finding on the models trained here; this chapter's
# verdict is not gathered in the introduction's table.)
