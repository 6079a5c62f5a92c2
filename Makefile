# make test       create .venv if missing, then run the tests
# make reproduce  create .venv if missing, run every notebook for PROFILE (SOURCE=official: chapters 3-5 on
#                 the released questions), then build the book
# make book       build _build/html from the executed notebooks
# make models     train the synth profile's models that are missing (runs/): synth-*, mirage, mirage-query
# make publish    push the built book (_build/html) to the gh-pages branch of REMOTE (default origin)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
PROFILE ?= synth
SOURCE ?= generated
PARAMS ?=
REMOTE ?= origin
BOOKFLAGS ?=
TRAINFLAGS ?=
NOTEBOOKS := $(sort $(wildcard notebooks/*.py))
EXECUTED := $(patsubst notebooks/%.py,book/notebooks/%.ipynb,$(NOTEBOOKS))
SOURCES := $(shell find vhs -name '*.py')
RUN_CONFIG := build/run-config
RUNS := runs
# The synth book reads the models trained here (vhs/zoo.py), through the digest file `vhs train --all` rewrites
# only when a checkpoint changed; the coco profile loads downloaded weights instead.
MANIFEST := $(RUNS)/models.json
MODEL_DEPS := $(if $(filter synth,$(PROFILE)),$(MANIFEST))

.PHONY: setup test reproduce book publish clean models FORCE
.SECONDARY:

# torch first: `torch==2.13.0` takes the local CPU wheel on a CPU box and the CUDA build on a GPU box;
# installing the project afterwards finds it satisfied and pulls nothing more.
$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,book,api,hf]"
	touch $@

setup: $(BIN)/.installed

# Style and layering first (seconds), then the tests.
test: setup
	$(BIN)/ruff check vhs tests benchmarks notebooks
	$(BIN)/ruff format --check --quiet vhs tests benchmarks notebooks
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest

# Rewritten only when the profile or the parameters change, so unchanged notebooks are not re-run.
$(RUN_CONFIG): FORCE
	@mkdir -p $(dir $@)
	@echo "PROFILE=$(PROFILE) SOURCE=$(SOURCE) PARAMS=$(PARAMS)" | cmp -s - $@ || echo "PROFILE=$(PROFILE) SOURCE=$(SOURCE) PARAMS=$(PARAMS)" > $@

build/notebooks/%.ipynb: notebooks/%.py | setup
	@mkdir -p $(dir $@)
	$(BIN)/jupytext --quiet --to ipynb --output $@ $<

# Chapters 3-5 take their questions from SOURCE: generated here, or official (the released files, fetched
# by `vhs data vhs-official`).
book/notebooks/03_%.ipynb book/notebooks/04_%.ipynb book/notebooks/05_%.ipynb: CHAPTER_PARAMS = -p source $(SOURCE)

book/notebooks/%.ipynb: build/notebooks/%.ipynb $(SOURCES) $(RUN_CONFIG) $(MODEL_DEPS) | setup
	@mkdir -p $(dir $@)
	$(BIN)/papermill --kernel python3 --cwd . $< $(@:.ipynb=.running.ipynb) -p profile $(PROFILE) $(CHAPTER_PARAMS) $(PARAMS)
	$(BIN)/vhs redact $(@:.ipynb=.running.ipynb)
	mv $(@:.ipynb=.running.ipynb) $@

# The last chapter tabulates what every other chapter ran (their ledgers in build/ledger), so it runs last.
book/notebooks/09_reproducing.ipynb: $(filter-out book/notebooks/09_reproducing.ipynb,$(EXECUTED))

# The synth profile's models (vhs/zoo.py): each trained once (minutes on a CPU), then reused; `vhs train --all`
# retrains a model only when its checkpoint is missing or the model it builds on was retrained.
$(MANIFEST): FORCE | setup
	$(BIN)/vhs train --all --runs $(RUNS) $(TRAINFLAGS)

models: $(MANIFEST)

reproduce: setup $(EXECUTED)
	$(MAKE) book

book: setup
	$(BIN)/jupyter-book build --quiet $(BOOKFLAGS) .
	@echo "book: $(CURDIR)/_build/html/index.html"

# ghp-import commits _build/html as the gh-pages branch (with .nojekyll, so _static/ is served) and pushes it.
publish:
	@test -f _build/html/index.html || { echo "publish: no _build/html/index.html; run make reproduce (or make book) first" >&2; exit 2; }
	$(BIN)/ghp-import --no-jekyll --force --push --remote $(REMOTE) --branch gh-pages --message "Publish the book" _build/html

clean:
	rm -rf _build build book/notebooks
