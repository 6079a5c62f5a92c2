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
# # The haystacks
#
# A VHs question names an *anchor* object and a *target* object. Exactly one image of the
# haystack (the *needle*) shows the anchor; the question asks whether that image also shows the
# target. Every other image (a *distractor*) lacks the anchor but may well show the target, so
# spotting the target anywhere in the haystack is not enough. This chapter builds a question set
# with `vhs.data.questions`, shows one haystack, and checks the properties the benchmark relies on.

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
seed = 0  # question seed
mode = "single"  # single or multi: the mode of the haystack drawn
size = 20  # the drawn haystack's size
sizes = "1,2,3,5,10,20,50,100,500,1000,10000"  # haystack sizes of the statistics
per_size = 100  # questions per size (even: yes/no pairs)

# %%
import pandas as pd
from IPython.display import Markdown, display

from vhs import plots
from vhs.data import questions as qs
from vhs.data.profiles import load_profile_catalog

catalog = load_profile_catalog(profile)
size_list = tuple(int(s) for s in str(sizes).split(","))
questions = pd.DataFrame(qs.build_question_set(catalog, mode, size_list, per_size, seed, progress=False))
problems = [p for q in questions.to_dict("records") for p in qs.check_question(catalog, q)]
display(
    Markdown(
        f"Data set **{catalog.name}**: {len(catalog.image_ids):,} images, {len(catalog.category_names)} categories. "
        f"Built {len(questions):,} {mode}-needle questions (seed {seed}); annotation check: "
        f"**{'passed' if not problems else f'{len(problems)} problems'}**."
    )
)

# %% [markdown]
# ## One haystack
# The images in the order a model sees them; the needle is outlined in red. The prompt each
# model receives is the paper's: *"You are given a set of images. Please answer the following
# question in Yes or No: "* followed by the question.

# %%
example = next(iter(qs.build_questions(catalog, mode, size, 2, seed)))
plots.haystack_grid(catalog, example)
# %% [markdown]
# ## Categories
# How often each category is visible. Following our rule (the paper's sources are silent), an
# object counts as present only if it is not a crowd annotation and covers at least 1% of the
# image; a category counts as absent only if no instance of any size is annotated; images in
# between are never used for a question about that category.

# %%
plots.category_frequencies(catalog)
# %% [markdown]
# ## Question-set statistics
# Answers are balanced per size (every anchor/target pair appears once with *yes* and once with
# *no*), needles fall uniformly over the haystack, and the fraction of distractors that hold the
# target (what defeats "is the target anywhere?") is recorded per question.

# %%
plots.question_statistics(questions)
# %%
summary = questions.groupby("size").agg(
    questions=("qid", "count"),
    yes_fraction=("answer", lambda a: (a == "yes").mean()),
    anchors=("anchor", "nunique"),
    pairs=("target", lambda t: len(set(zip(questions.loc[t.index, "anchor"], t)))),
    distractors_with_target=("distractor_target_frac", "mean"),
)
summary.round(3)
