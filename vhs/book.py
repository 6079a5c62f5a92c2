"""What the book's notebooks share: the models each profile runs, the ledger of what each chapter
ran, and the parameters each notebook takes.

Each chapter names its models by their synth names (`synth-llava`, `synth-caption`,
`clip-retrieve`, `mirage`, `mirage-query`). On the synth profile they are the checkpoints trained
here (`make models`); on the coco profile each stands for its real counterpart (`vhs.zoo`), or is
`Unavailable` with the reason the ledger shows: no counterpart yet, the released MIRAGE-8.3B's
weights not downloaded (`vhs data mirage-official`), the query-aware MIRAGE not yet trained on a GPU
box. Any other name is taken as a backend spec (`openai:gpt-4o`, `hf:…`) on either profile.
"""

import ast
import json
import tempfile
import time
from pathlib import Path

import jupytext
import pandas as pd

from vhs.cache import ResponseCache
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.data.official import chapter_set
from vhs.data.released import MIRAGE_REPO, default_root, read_manifest
from vhs.errors import VhsError
from vhs.eval.estimate import estimate_paper_run, estimate_run, images_per_request, offline_backend
from vhs.eval.runner import RunOptions, Unavailable, evaluate_models, run_backend
from vhs.findings import Finding
from vhs.metrics import SCORED
from vhs.models.prices import format_usd
from vhs.models.registry import accepted_options, load_backend, parse_spec, public_spec, trained_here
from vhs.paper import PAPER_NAMES
from vhs.paths import atomic_path, response_cache_path
from vhs.zoo import MODELS

LEDGER_COLUMNS = ("profile", "chapter", "model", "questions", "answered", "not_answerable", "errors", "not_run", "reason")


NO_COUNTERPART = Unavailable("not built for this profile yet")


def model_specs(profile: str, names: str, runs: str = "runs") -> dict[str, str | Unavailable]:
    """Label -> backend spec for a notebook's comma-separated `models` on `profile`, or why it cannot run there."""
    specs: dict[str, str | Unavailable] = {}
    for name in (n.strip() for n in str(names).split(",") if n.strip()):
        model = MODELS.get(name)
        if model is None or not model.spec:
            specs[public_spec(name)] = name
        elif profile == "synth":
            specs[name] = trained_here(name, runs)
        else:
            label, spec = model.coco
            specs[label] = _present(name, spec.format(runs=runs)) if spec else NO_COUNTERPART
    return specs


def _present(name: str, spec: str) -> str | Unavailable:
    """Model `name`'s coco spec as given once its weights are on this machine; otherwise what is missing and how
    to get it."""
    backend, checkpoint, _ = parse_spec(spec)
    if backend == "mirage" and not (Path(checkpoint) / "config.json").exists():
        return Unavailable(f"not trained: `vhs train {name} --profile coco --out {checkpoint}` on a GPU box")
    if backend == "mirage-official":
        from vhs.mirage.official import missing_weights  # transformers loads only where the coco profile asks

        missing = missing_weights(checkpoint or MIRAGE_REPO)
        return Unavailable(missing) if missing else spec
    return spec


SOURCES = ("generated", "official")  # a chapter's questions: built here from the seed, or the released files


def chapter_questions(
    catalog: Catalog, mode: str, sizes: tuple[int, ...], per_size: int, seed: int, source: str = "generated"
) -> tuple[list[dict], str]:
    """A chapter's questions of `mode` at `sizes`, and the sentence that says where they came from: generated
    here from `seed`, or (`source="official"`) the released files `vhs data vhs-official` fetched."""
    if source not in SOURCES:
        raise VhsError(f"source is one of {', '.join(SOURCES)}, not {source!r}")
    if source == "generated":
        questions = list(qs.build_question_set(catalog, mode, sizes, per_size, seed, progress=False))
        return questions, f"generated here by the benchmark's rules (seed {seed}, {per_size} questions per size)"
    root = default_root()
    manifest = read_manifest(root)
    if manifest is None:
        raise VhsError(f"source=official: no released questions under {root}; run `vhs data vhs-official` first")
    questions, absent = chapter_set(catalog, root, mode, sizes, per_size, seed)
    note = (
        f"the released files of {manifest['repo']} at commit {manifest['commit'][:12]} ({manifest['layout']} layout), "
        f"the first {per_size} questions per size, in an order drawn from seed {seed}"
    )
    return questions, note + (f"; the release has no {mode}-needle file of size {', '.join(map(str, absent))}" if absent else "")


def chapter_results(
    chapter: str, profile: str, models: str, questions: list[dict], runs: str = "runs", options: RunOptions | None = None
) -> pd.DataFrame:
    """What every chapter does first: its `models` (`model_specs`) over `questions`, answered through the
    shared response cache, what ran recorded in the ledger (`record_run`); returns the results table."""
    cache = ResponseCache(response_cache_path())
    results = evaluate_models(model_specs(profile, models, runs), questions, cache, options or RunOptions())
    record_run(results, chapter, profile)
    return results


# Chapter 7's retrievers: label -> (the model whose spec it uses, the option that makes it this retriever).
RETRIEVERS = {
    "mirage": ("mirage", ""),
    "clip (question)": ("clip-retrieve", "query=question"),
    "clip (anchor name)": ("clip-retrieve", ""),
}


def retriever_specs(profile: str, runs: str = "runs") -> dict[str, str | Unavailable]:
    """Label -> backend spec of each retriever chapter 7 compares, from the same specs the chapters answer
    with (`model_specs`), or why the profile cannot run it."""
    specs: dict[str, str | Unavailable] = {}
    for label, (name, option) in RETRIEVERS.items():
        (spec,) = model_specs(profile, name, runs).values()
        specs[label] = f"{spec}{'&' if '?' in spec else '?'}{option}" if spec and option else spec
    return specs


# The backends of the models trained here: their checkpoints are local and small, so loading one to read a
# fact is cheap, unlike a hub model's download or a paid API's key check.
TRAINED_BACKENDS = frozenset(parse_spec(model.spec)[0] for model in MODELS.values() if model.spec)


def image_tokens(specs: dict[str, str | Unavailable]) -> dict[str, int]:
    """Label -> tokens one image takes in the LM's context, for each available spec of a model trained here
    whose backend fixes it (the others are left out)."""
    tokens = {}
    for label, spec in specs.items():
        if spec and parse_spec(spec)[0] in TRAINED_BACKENDS:
            count = load_backend(spec).image_tokens
            if count is not None:
                tokens[label] = count
    return tokens


def training_record(checkpoint: str | Path) -> tuple[dict[str, list[float]], dict] | None:
    """A checkpoint's training curves and what its `config.json` says of its training (steps, seconds,
    hyperparameters), or None when the directory holds no trained checkpoint."""
    checkpoint = Path(checkpoint)
    if not (checkpoint / "curve.json").exists() or not (checkpoint / "config.json").exists():
        return None
    training = json.loads((checkpoint / "config.json").read_text()).get("training", {})
    return json.loads((checkpoint / "curve.json").read_text()), training


def cache_rerun(specs: dict[str, str], questions: list[dict]) -> pd.DataFrame:
    """Each spec answers `questions` twice into a fresh, empty cache, loaded once: seconds of each run
    (image hashing and the cache lookups included, loading the model not) and the answers read back."""
    timings = []
    with tempfile.TemporaryDirectory() as folder:
        fresh = ResponseCache(Path(folder) / "cache.sqlite")
        for label, spec in specs.items():
            backend = load_backend(spec)
            for attempt in ("first run", "re-run"):
                start = time.perf_counter()
                table = run_backend(backend, questions, fresh)
                seconds = round(time.perf_counter() - start, 3)
                timings.append(
                    {
                        "model": label,
                        "run": attempt,
                        "seconds": seconds,
                        "answers from the cache": int(table["cached"].sum()),
                        "questions": len(table),
                    }
                )
    return pd.DataFrame(timings)


def _not_run_reason(rows: pd.DataFrame) -> str:
    """Why the not-run rows among `rows` were not run: the first reason the runner gave, or ""."""
    return next((r for r in rows.loc[rows["status"] == "not_run", "raw"] if isinstance(r, str) and r), "")


def not_run_note(results: pd.DataFrame) -> str:
    """One paragraph naming the models of `results` that were not run at all, why, and what they would have
    been asked (questions and the images in them); empty when every model ran."""
    skipped = [(model, rows) for model, rows in results.groupby("model", sort=False) if (rows["status"] == "not_run").all()]
    if not skipped:
        return ""
    reasons = {model: _not_run_reason(rows) or "unavailable" for model, rows in skipped}
    named = "; ".join(f"`{model}` ({reason})" for model, reason in reasons.items())
    rows = skipped[0][1]
    return (
        f"**Not run in this build:** {named}. Run, each would be asked {len(rows):,} questions holding "
        f"{int(rows['size'].sum()):,} images, and its results would replace this paragraph."
    )


REASONING_OPTIONS = ("reasoning_effort", "thinking_budget", "reasoning_max_tokens", "include_thoughts")


def commercial_models(
    models: str, questions: list[dict], sizes: tuple[int, ...], data: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chapter 2's two tables for the paid models among `models` (comma-separated specs), computed with no
    request sent:
    each model's limits (images per request on this profile's and on COCO-sized images) and reasoning
    settings; and its list price with what this chapter's run (`questions`, whose images are under `data`,
    default the profile's place) and a paper-sized run (1,000 questions at each of `sizes`, COCO-sized) cost."""
    cache = ResponseCache(response_cache_path())
    limits, costs = [], []
    try:
        for spec in (m.strip() for m in str(models).split(",") if m.strip()):
            backend = offline_backend(spec)
            if backend is None:  # a local model: chapter 8 says what it costs in seconds
                continue
            label = public_spec(spec)
            chapter = estimate_run(backend, questions, cache, data)
            paper = estimate_paper_run(backend, sizes, questions[0]["question"])
            settable = sorted(set(REASONING_OPTIONS) & accepted_options(type(backend)))
            here, coco = (images_per_request(backend, round(e.image_bytes)) for e in (chapter, paper))
            limits.append(
                {
                    "model": label,
                    "in the paper": "yes" if f"{backend.name}:{backend.model_id}" in PAPER_NAMES else "",
                    "images per request: here · COCO": f"{here:,} · {coco:,}",
                    "thinks": "yes" if backend.params["reasoning"] else "no",
                    "output cap": f"{backend.params['max_tokens']:,}",
                    "reasoning options": ", ".join(f"?{o}" for o in settable) or "none",
                }
            )
            price = backend.price
            over = f" ({paper.not_answerable:,} over the limits)" if paper.not_answerable else ""
            costs.append(
                {
                    ("", "model"): label,
                    ("list price", "$ / 1M in · out"): f"{price.input:g} · {price.output:g}" if price else "unknown",
                    ("list price", "as of"): price.as_of if price else "",
                    ("this chapter", "input"): format_usd(chapter.input_usd),
                    ("this chapter", "output, at most"): format_usd(chapter.output_usd),
                    ("paper-sized", "requests"): f"{paper.requests:,}{over}",
                    ("paper-sized", "input"): format_usd(paper.input_usd),
                    ("paper-sized", "output, at most"): format_usd(paper.output_usd),
                }
            )
    finally:
        cache.close()
    return pd.DataFrame(limits), pd.DataFrame(costs, columns=pd.MultiIndex.from_tuples(costs[0]) if costs else None)


def record_run(results: pd.DataFrame, chapter: str, profile: str, ledger: str | Path = "build/ledger") -> Path:
    """Write what `chapter` ran (per model: questions answered, over the limits, failed, not run and why)."""
    rows = []
    for model, group in results.groupby("model", sort=False):
        status = group["status"]
        skipped = group[status == "not_run"]
        rows.append(
            {
                "profile": profile,
                "chapter": chapter,
                "model": model,
                "questions": len(group),
                "answered": int(status.isin(SCORED).sum()),
                "not_answerable": int(status.str.startswith("not_answerable").sum()),
                "errors": int((status == "error").sum()),
                "not_run": len(skipped),
                "reason": _not_run_reason(skipped),
            }
        )
    path = Path(ledger) / f"{chapter}.csv"
    with atomic_path(path) as partial:
        pd.DataFrame(rows, columns=list(LEDGER_COLUMNS)).to_csv(partial, index=False)
    return path


def _cell(row: pd.Series) -> str:
    if row["not_run"] == row["questions"]:
        return f"not run: {row['reason'] or 'unavailable'}"
    parts = [f"{row['answered']} answered"]
    if row["not_answerable"]:
        parts.append(f"{row['not_answerable']} not answerable")
    if row["errors"]:
        parts.append(f"{row['errors']} errors")
    if row["not_run"]:
        parts.append(f"{row['not_run']} not run: {row['reason']}")
    return ", ".join(parts)


def record_finding(finding: Finding, profile: str, folder: str | Path = "build/findings") -> str:
    """Keep what a chapter found (`vhs.findings`) for the introduction's table; returns its paragraph."""
    path = Path(folder) / f"{profile}-{finding.number}.json"
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(finding.record()))
    return finding.markdown()


def read_findings(profile: str, folder: str | Path = "build/findings") -> pd.DataFrame:
    """The findings the chapters recorded for `profile`, one row per finding in the paper's order."""
    rows = [json.loads(path.read_text()) for path in sorted(Path(folder).glob(f"{profile}-*.json"))]
    columns = ["number", "chapter", "title", "paper", "ours", "verdict"]
    return pd.DataFrame(rows, columns=columns).sort_values("number").reset_index(drop=True)


def findings_table(findings: pd.DataFrame) -> pd.DataFrame:
    """The introduction's table of `read_findings` rows: the finding (number, title, chapter), the paper's
    claim, what this build found with its test, and the verdict, in four columns that fit the page."""
    named = [f"{row.number}. {row.title} (chapter {row.chapter})" for row in findings.itertuples()]
    return pd.DataFrame(
        {"finding": named, "the paper": findings["paper"], "this build": findings["ours"], "verdict": findings["verdict"]}
    )


def read_ledger(profile: str, ledger: str | Path = "build/ledger") -> pd.DataFrame:
    """Every chapter's record (`record_run`) for `profile`, one row per chapter and model."""
    files = sorted(Path(ledger).glob("*.csv"))
    if not files:
        return pd.DataFrame(columns=list(LEDGER_COLUMNS))
    table = pd.concat([pd.read_csv(f, keep_default_na=False) for f in files], ignore_index=True)
    return table[table["profile"] == profile].reset_index(drop=True)


def what_was_run(ledger: pd.DataFrame) -> pd.DataFrame:
    """One row per chapter and model: how many questions the model answered there, or why it was not run
    (long, so that it fits a page's column however many chapters and models there are)."""
    if ledger.empty:
        return pd.DataFrame(columns=["chapter", "model", "outcome"])
    cells = ledger.assign(outcome=ledger.apply(_cell, axis=1))
    return cells.sort_values(["chapter", "model"])[["chapter", "model", "outcome"]].reset_index(drop=True)


def notebook_parameters(notebook: str | Path) -> pd.DataFrame:
    """The `parameters` cell of a jupytext notebook: name, default and the comment beside it."""
    cells = [c for c in jupytext.read(notebook).cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return pd.DataFrame(columns=["parameter", "default", "meaning"])
    source = cells[0].source
    lines = source.splitlines()
    rows = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            comment = lines[node.end_lineno - 1][node.end_col_offset :].strip().removeprefix("#").strip()
            rows.append({"parameter": node.targets[0].id, "default": repr(ast.literal_eval(node.value)), "meaning": comment})
    return pd.DataFrame(rows)
