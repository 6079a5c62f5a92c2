"""The book's shared pieces: which model each profile runs, the ledger of what was run, notebook parameters."""

import json
from pathlib import Path

import pandas as pd
import pytest

from vhs.book import (
    chapter_results,
    findings_table,
    model_specs,
    not_run_note,
    notebook_parameters,
    read_findings,
    read_ledger,
    record_finding,
    record_run,
    retriever_specs,
    what_was_run,
)
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.data.released import MIRAGE_REPO
from vhs.eval.rows import RESULT_COLUMNS
from vhs.eval.runner import Unavailable
from vhs.findings import Finding

REPO = Path(__file__).resolve().parents[1]

CLIP_SPEC = "clip-retrieve:openai/clip-vit-large-patch14-336?reader=hf:llava-hf/llava-1.5-7b-hf"


def test_model_specs_map_synth_names_per_profile_and_pass_specs_through() -> None:
    assert model_specs("synth", "synth-llava, mirage-query,openai:gpt-4o", "r") == {
        "synth-llava": "synth-llava:r/synth-llava",
        "mirage-query": "mirage:r/mirage-query",
        "openai:gpt-4o": "openai:gpt-4o",
    }
    assert model_specs("coco", "synth-llava,synth-caption,clip-retrieve") == {
        "LLaVA-v1.5-7B": "hf:llava-hf/llava-1.5-7b-hf?context=2048",
        "Caption (LLaVA + Llama-3)": "caption:llava-hf/llava-1.5-7b-hf",
        "CLIP-L/14-336 + LLaVA": CLIP_SPEC,
    }


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache in place of this machine's."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def cached_model(cache: Path, repo: str, files: dict[str, str]) -> None:
    """`repo` at main in the Hub's cache layout, as a download leaves it."""
    folder, commit = cache / f"models--{repo.replace('/', '--')}", "0" * 40
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    for name, text in files.items():
        (folder / "snapshots" / commit / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / "snapshots" / commit / name).write_text(text)


def test_the_coco_mirages_run_once_their_weights_are_here(tmp_path: Path, hub_cache: Path) -> None:
    absent = Unavailable(f"weights absent: {MIRAGE_REPO} is not downloaded (`vhs data mirage-official` on a GPU box)")
    command = f"vhs train mirage-query --profile coco --out {tmp_path}/coco-mirage-query"
    untrained = Unavailable(f"not trained: `{command}` on a GPU box")
    assert model_specs("coco", "mirage,mirage-query", str(tmp_path)) == {"MIRAGE-8.3B": absent, "MIRAGE (query-aware)": untrained}
    cached_model(hub_cache, MIRAGE_REPO, {"config.json": json.dumps({"mm_vision_tower": "openai/clip-vit-large-patch14-336"})})
    assert model_specs("coco", "mirage", str(tmp_path))["MIRAGE-8.3B"] == Unavailable(
        "weights absent: its CLIP openai/clip-vit-large-patch14-336 is not downloaded (`vhs data mirage-official`)"
    )
    cached_model(hub_cache, "openai/clip-vit-large-patch14-336", {"config.json": "{}"})
    (tmp_path / "coco-mirage-query").mkdir()
    (tmp_path / "coco-mirage-query" / "config.json").write_text("{}")
    assert model_specs("coco", "mirage,mirage-query", str(tmp_path)) == {
        "MIRAGE-8.3B": "mirage-official",
        "MIRAGE (query-aware)": f"mirage:{tmp_path}/coco-mirage-query",
    }


def _results(model: str, statuses: list[str], raw: str | None = None) -> pd.DataFrame:
    rows = [{column: None for column in RESULT_COLUMNS} | {"model": model, "status": s, "raw": raw} for s in statuses]
    return pd.DataFrame(rows)


def test_the_ledger_says_what_each_chapter_ran_and_why_not(tmp_path: Path) -> None:
    three = pd.concat(
        [_results("llava", ["ok", "unparsed", "not_answerable:context"]), _results("gpt", ["not_run"] * 3, "no API key")]
    )
    record_run(three, "3 single-needle", "synth", tmp_path)
    record_run(_results("llava", ["ok", "error"]), "4 multi-needle", "synth", tmp_path)
    record_run(_results("llava", ["ok"]), "4 multi-needle", "coco", tmp_path / "other")
    table = what_was_run(read_ledger("synth", tmp_path))
    assert table.values.tolist() == [
        ["3 single-needle", "gpt", "not run: no API key"],
        ["3 single-needle", "llava", "2 answered, 1 not answerable"],
        ["4 multi-needle", "llava", "1 answered, 1 errors"],
    ]
    assert read_ledger("coco", tmp_path).empty and what_was_run(read_ledger("coco", tmp_path)).empty


def test_notebook_parameters_read_names_defaults_and_comments() -> None:
    table = notebook_parameters(REPO / "notebooks" / "03_single_needle.py")
    row = table.set_index("parameter").loc["per_size"]
    assert row["default"] == "50" and row["meaning"] == "questions per size (even: yes/no pairs)"
    assert table["parameter"].tolist()[:2] == ["profile", "seed"]


def test_the_retrievers_chapter_7_compares_are_the_specs_its_models_answer_with(tmp_path: Path, hub_cache: Path) -> None:
    assert retriever_specs("synth", "r") == {
        "mirage": "mirage:r/mirage",
        "clip (question)": "clip-retrieve:r/synth-clip?reader=r/synth-llava&query=question",
        "clip (anchor name)": "clip-retrieve:r/synth-clip?reader=r/synth-llava",
    }
    absent = Unavailable(f"weights absent: {MIRAGE_REPO} is not downloaded (`vhs data mirage-official` on a GPU box)")
    assert retriever_specs("coco", str(tmp_path)) == {
        "mirage": absent,
        "clip (question)": f"{CLIP_SPEC}&query=question",
        "clip (anchor name)": CLIP_SPEC,
    }


def test_a_chapter_answers_through_the_shared_cache_and_records_what_it_ran(
    env: Path, small_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(env)
    questions = list(qs.build_question_set(small_catalog, "single", (1, 3), 2, 0, progress=False))
    first = chapter_results("3 single-needle", "synth", "always-yes", questions)
    assert list(first["model"].unique()) == ["always-yes"] and not first["cached"].any()
    assert (env / "vhs-data" / "cache.sqlite").exists()
    again = chapter_results("3 single-needle", "synth", "always-yes", questions)
    assert again["cached"].all()
    assert what_was_run(read_ledger("synth", env / "build" / "ledger")).values.tolist() == [
        ["3 single-needle", "always-yes", "4 answered"]
    ]


def test_a_chapter_names_the_models_it_did_not_run_with_what_they_would_have_been_asked() -> None:
    ran = _results("llava", ["ok", "not_run"], "not sent: --max-requests 1").assign(size=[3, 5])
    skipped = _results("gpt", ["not_run"] * 2, "no API key").assign(size=[3, 5])
    note = not_run_note(pd.concat([ran, skipped]))
    assert note.startswith("**Not run in this build:** `gpt` (no API key). Run, each would be asked 2 questions holding 8 images")
    assert not_run_note(ran) == ""


def test_the_findings_a_chapter_records_come_back_in_the_papers_order_per_profile(tmp_path: Path) -> None:
    second = Finding(2, "3", "room", "p.", "o.", "by construction")
    first = Finding(1, "3", "falls", "p.", "o.", "reproduced")
    assert record_finding(second, "synth", tmp_path) == second.markdown()
    record_finding(first, "synth", tmp_path)
    record_finding(first, "coco", tmp_path)
    table = read_findings("synth", tmp_path)
    assert table["number"].tolist() == [1, 2] and table["verdict"].tolist() == ["reproduced", "by construction"]
    assert read_findings("other", tmp_path).empty
    assert findings_table(table).values.tolist()[0] == ["1. falls (chapter 3)", "p.", "o.", "reproduced"]
