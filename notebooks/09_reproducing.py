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
# # Reproducing this book
#
# Everything in this book comes from the commands below; nothing is pasted by hand.
#
# ```bash
# make reproduce                       # synth profile: train what is missing, run every notebook, build the book
# make reproduce PROFILE=coco          # GPU box: COCO 2017 and real weights
# make reproduce PARAMS="-p per_size 10 -p sizes 1,2,3,20,100"   # override any notebook parameter
# make reproduce TRAINFLAGS="--steps 300"                          # shorter training (CI does this)
# make book                            # rebuild _build/html from the executed notebooks
# make publish REMOTE=origin           # push _build/html to the gh-pages branch
# ```
#
# `make reproduce` converts each `notebooks/NN_name.py` (jupytext percent format) to a notebook,
# runs it with papermill and writes the executed notebook to `book/notebooks/`, where the book
# reads it. A notebook re-runs only when it, the `vhs` package, the profile, the parameters or a
# model it reads changed; answers live in the response cache (`$VHS_DATA/cache.sqlite`), so a
# re-run never computes or pays for an answer twice. One notebook alone, with any parameter:
#
# ```bash
# jupytext --to ipynb notebooks/03_single_needle.py -o build/03.ipynb
# papermill build/03.ipynb out.ipynb -p profile synth -p per_size 100 -p sizes 1,10,100
# ```

# %% tags=["parameters"]
profile = "synth"  # synth (generated scenes, models trained here) or coco (GPU box)
notebooks = "notebooks"  # where the chapters' sources are

# %% tags=["hide-input"]
from pathlib import Path

from IPython.display import Markdown, display

from vhs import page, plots
from vhs.book import findings_table, notebook_parameters, read_findings, read_ledger, what_was_run

ledger = read_ledger(profile)
page.figure("run-overview", plots.run_overview(ledger))
verdicts = page.value("findings", page.table(findings_table(read_findings(profile))))  # shown by the introduction
# %% [markdown]
# ## What was run in this build
# Per model and chapter, how many questions were answered, how many a model could not take (its
# context or payload limit), and why a model was not run. The introduction shows the same table.
#
# ```{glue:figure} run-overview
# :name: fig-run-overview
#
# This build's questions per chapter and model, by outcome: answered, not answerable (over the
# model's context or payload limit), failed, and not run.
# ```

# %% tags=["hide-input"]
ran = page.table(what_was_run(ledger))
page.value("what_was_run", ran)  # the introduction shows it too
ran

# %% [markdown]
# ## The two profiles
#
# **synth** (the default) generates its scenes on first use (`data/synth/`) and trains its models on
# the CPU (`make models`, into `runs/`: synth-clip, synth-captioner, synth-caption, synth-llava,
# mirage, mirage-query; `vhs train NAME --steps N --seed S` trains one).
#
# **coco** needs a GPU box:
#
# ```bash
# vhs data coco --root data/coco                    # COCO 2017 val + train, resumable, MD5-checked
# vhs data mirage-official                          # the released MIRAGE-8.3B and its CLIP
# vhs data vhs-official                             # the released questions, for SOURCE=official
# export OPENAI_API_KEY=… ANTHROPIC_API_KEY=… GEMINI_API_KEY=…   # each one optional
# make reproduce PROFILE=coco                       # SOURCE=official: chapters 3-5 on the released questions
# ```
#
# On coco each chapter's synth model stands for its real counterpart, downloaded on first use:
# synth-llava for `hf:llava-hf/llava-1.5-7b-hf?context=2048` (the 2,048-token window it was trained
# with, as in the paper) and synth-caption for LLaVA captions read by
# `hf:meta-llama/Meta-Llama-3-8B-Instruct`; clip-retrieve for CLIP ViT-L/14-336 ranking the images and
# LLaVA-1.5 answering on the top k; mirage for the released MIRAGE-8.3B (`mirage-official`), which runs
# once `vhs data mirage-official` has downloaded it and is otherwise not run ("weights absent");
# mirage-query for a query-aware MIRAGE trained there (`vhs train mirage-query --profile coco`), not run
# until it is. A commercial model without its key
# appears as not run; with it, chapter 2 asks at most `max_requests` paid questions per model.
# Any OpenAI-compatible server (vLLM, SGLang, llama.cpp) is a model too:
# `-p models "openai:Qwen/Qwen2-VL-7B-Instruct@http://127.0.0.1:8000/v1"`.
#
# ## Adding a model
#
# A model is one file: `vhs/models/NAME.py` with a `Backend` subclass (`generate` takes a
# `Request` — the prompt and the images in order — and returns a `Reply`; `limits` says how many
# images or tokens it takes), and one line in `BACKENDS` of `vhs/models/registry.py`. Then
# `vhs eval --model NAME:…` and every chapter's `models` parameter accept it; the harness brings
# the cache, retries, limits and scoring. A class outside `vhs` works by its Python path:
# `-p models mypkg.mymodule.MyBackend`.

# %% [markdown]
# ## Every notebook's parameters
# Read from each notebook's `parameters` cell; `make reproduce PARAMS="-p NAME VALUE"` gives a
# value to every notebook that has the parameter.

# %% tags=["hide-input"]
for source in sorted(Path(notebooks).glob("*.py")):
    display(Markdown(f"**{source.name}**"))
    display(page.table(notebook_parameters(source)))
