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
# # Cost and speed
#
# What a question costs each model as the haystack grows: the seconds it took to answer (measured
# when the answer was computed, and kept with it in the response cache) and the tokens its language
# model read. A full-context model pays for every image; a retrieving model pays for a retriever
# pass over every image and the LM on the few it keeps. The questions default to chapter 3's, so on
# a second run their answers come from the shared cache; the last section measures that cache.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "1,2,3,5,10,20,50,100,1000,10000"  # haystack sizes
per_size = 50  # questions per size (even: yes/no pairs)
models = "synth-llava,synth-caption,clip-retrieve,mirage"  # models trained here (or their coco counterparts), or backend specs
rerun_questions = 40  # questions of the cache measurement (the smallest sizes first)
runs = "runs"  # where `make models` put the synth checkpoints

# %% tags=["hide-input"]
from vhs import page, plots
from vhs.book import cache_rerun, chapter_results, model_specs
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.metrics import SCORED

catalog = load_profile_catalog(profile)
size_list = tuple(int(s) for s in str(sizes).split(","))
questions = list(qs.build_question_set(catalog, "single", size_list, per_size, seed, progress=False))
specs = model_specs(profile, models, runs)
results = chapter_results("8 cost and speed", profile, models, questions, runs)
answered = results[results["status"].isin(SCORED)]
costs = answered.rename(columns={"latency": "seconds", "input_tokens": "tokens"})[["model", "size", "seconds", "tokens"]].astype(
    {"tokens": "float64"}
)
not_run = [label for label, rows in results.groupby("model") if (rows["status"] == "not_run").all()]
page.figure("cost", plots.cost_vs_size(costs, not_run))

# %% [markdown]
# ## Seconds and tokens per question against haystack size
#
# ```{glue:figure} cost
# :name: fig-cost
#
# Seconds per question (left) and the LM's input tokens per question (right) against haystack size,
# means over the answered questions of this build; ours only (the paper reports no such curve). A
# size a model cannot take has no point. On the synth profile the seconds are those of this build's
# machine (2 CPU cores in CI), batched; the retrieving models' image features are computed once per
# distinct image and kept, so a question whose images were seen before costs only the retriever pass
# and the LM (the first questions of a fresh build also pay for filling the store).
# ```

# %% tags=["hide-input"]
means = costs.groupby(["model", "size"]).mean().reset_index()
page.table(means, digits=4, whole=("tokens",))

# %% [markdown]
# ## The response cache on a re-run
# Each model that was run answers the same `rerun_questions` questions twice into a fresh, empty
# cache, loaded once: the first run computes every answer, the second reads them back. Seconds of
# each run (image hashing and the cache lookups included; loading the model excluded).

# %% tags=["hide-input"]
ran = [label for label, rows in results.groupby("model", sort=False) if (rows["status"] != "not_run").any()]
page.table(cache_rerun({label: specs[label] for label in ran}, questions[:rerun_questions]))
