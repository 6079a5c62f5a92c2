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
# # Caption-then-LLM against direct visual answering
#
# The paper's July 2024 version found that describing every image in words and letting a text LLM
# answer from the captions beat the multi-image models that look at the images directly, on
# multi-image questions: visual reasoning over several images was not yet better than reading.
# Here the two synth models share the same image encoder and the same tiny LM: **synth-caption**
# reads the captioner's numbered captions, **synth-llava** reads each image's 64 patch tokens.
# On coco they stand for LLaVA captions + Llama-3 against LLaVA-v1.5-7B.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
sizes = "1,2,3,5,10"  # single-needle haystack sizes
per_size = 100  # questions per size (even: yes/no pairs)
models = "synth-caption,synth-llava"  # caption-then-LLM first, then the direct model
runs = "runs"  # where `make models` put the synth checkpoints

# %%
import pandas as pd

from vhs import plots
from vhs.book import chapter_results, model_specs
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog
from vhs.metrics import summarize
from vhs.paper import paper_curve

catalog = load_profile_catalog(profile)
size_list = tuple(int(s) for s in str(sizes).split(","))
questions = [
    *qs.build_question_set(catalog, "single", size_list, per_size, seed, progress=False),
    *qs.needles_only(catalog, (2, 3), per_size, seed),
]
results = chapter_results("6 caption vs direct", profile, models, questions, runs)
summary = summarize(results)

# %% [markdown]
# ## Accuracy, side by side
# Left, single-needle haystacks; right, multi-needle questions over the needles only (2 or 3
# images). Wilson 95% bands; the July 2024 paper's caption-based baseline and LLaVA-v1.5-7B
# (arXiv v1, Table 1, COCO) dashed in grey: the paper's runs, not ours.

# %%
paper = pd.concat([paper_curve(name) for name in ("Caption-based (LLaVA + Llama-3)", "LLaVA-v1.5-7B")], ignore_index=True)
plots.accuracy_vs_size(summary, paper)
# %% [markdown]
# ## The difference
# Caption-then-LLM minus direct, in accuracy points, where both answered.

# %%
labels = list(model_specs(profile, models, runs))
wide = summary.pivot_table(index=["mode", "size"], columns="model", values="accuracy")
if set(labels) <= set(wide.columns):
    wide["caption − direct"] = wide[labels[0]] - wide[labels[1]]
wide.round(3)
