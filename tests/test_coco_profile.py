"""The coco profile end to end on a tiny COCO directory: every chapter executed by papermill with
`profile=coco`, as `make reproduce PROFILE=coco` runs them, with tiny random transformers models
standing in for LLaVA-1.5 and Llama-3 and no API key set. A stand-in Hub on 127.0.0.1 serves what a GPU
box downloads: the released MIRAGE-8.3B (a tiny random checkpoint in its layout, fetched by `vhs data
mirage-official` first), CLIP ViT-L/14-336 and LLaVA-1.5 (tiny random ones, fetched on first use by
clip-retrieve)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("transformers")
pytest.importorskip("papermill")

from tests.coco_fixtures import write_coco_dataset
from tests.conftest import PROVIDER_ENV
from tests.fake_hub import HubRepo, folder_files, hub_serving, released_mirage
from vhs.data.released import REPO as QUESTIONS_REPO
from vhs.models.hf_random import TINY, Sizes, write_clip, write_llava, write_official_mirage, write_text_lm

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
LLAVA_REPO = "llava-hf/llava-1.5-7b-hf"  # clip-retrieve's reader on coco, fetched from the stand-in Hub


@pytest.fixture(scope="module")
def coco_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every chapter executed on the coco profile in a scratch directory; returns that directory."""
    work = tmp_path_factory.mktemp("coco-book")
    write_coco_dataset(work / "data" / "coco", images=60)
    llava = write_llava(work / "llava", Sizes(**{**TINY.__dict__, "context": 2048}))
    lm = write_text_lm(work / "lm", Sizes(**{**TINY.__dict__, "context": 4096}))
    models = f"hf:{llava}?max_new_tokens=2,caption:{llava}?llm=hf:{lm}&caption_tokens=4,mirage,clip-retrieve,openai:gpt-4o"
    env = {k: v for k, v in os.environ.items() if k not in (*PROVIDER_ENV, "HF_HUB_OFFLINE")} | {
        "VHS_DATA": str(work / "data"),
        "MPLBACKEND": "Agg",
        "HF_HOME": str(work / "hf"),
    }
    released = write_official_mirage(work / "mirage", write_clip(work / "clip"))
    hub = released_mirage(released) | {LLAVA_REPO: HubRepo("model", {"main": folder_files(llava)})}
    hub[QUESTIONS_REPO] = HubRepo("dataset", {"main": folder_files(released_questions(work, env))})
    (work / "in").mkdir()
    (work / "out").mkdir()
    with hub_serving(hub) as server:
        env["HF_ENDPOINT"] = server.endpoint  # what a chapter downloads on first use comes from here
        for fetch in ("mirage-official", "vhs-official"):
            subprocess.run([sys.executable, "-m", "vhs.cli", "data", fetch], check=True, env=env, capture_output=True)
        run_chapters(work, env, models)
    return work


def released_questions(work: Path, env: dict[str, str]) -> Path:
    """Single-needle questions of sizes 1-3 on the test's COCO, written in the released layout (the Hub's stand-in
    serves them as `tsunghanwu/visual_haystacks`)."""
    out = work / "release"
    argv = ["questions", "--profile", "coco", "--sizes", "1,2,3", "--per-size", "4", "--seed", "5"]
    argv += ["--out", str(work / "q.jsonl"), "--export-official", str(out)]
    subprocess.run([sys.executable, "-m", "vhs.cli", *argv], check=True, env=env, capture_output=True)
    return out


def run_chapters(work: Path, env: dict[str, str], models: str) -> None:
    """Every notebook converted with jupytext and executed with papermill on the coco profile, as `make reproduce`."""
    for source in NOTEBOOKS:
        notebook = work / "in" / f"{source.stem}.ipynb"
        subprocess.run(
            [sys.executable, "-m", "jupytext", "--quiet", "--to", "ipynb", "--output", str(notebook), str(source)],
            check=True,
            env=env,
        )
        params = [
            "-p",
            "profile",
            "coco",
            "-p",
            "sizes",
            "1,2,3",
            "-p",
            "size",
            "3",
            "-p",
            "per_size",
            "4",
            "-p",
            "models",
            models,
            "-p",
            "notebooks",
            str(REPO / "notebooks"),
        ]
        if source.stem[:2] in ("03", "04", "05"):
            params += ["-p", "source", "official"]  # as `make reproduce SOURCE=official`: the released questions
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "papermill",
                "--kernel",
                "python3",
                "--cwd",
                str(work),
                str(notebook),
                str(work / "out" / notebook.name),
                *params,
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0, f"{source.name} failed on the coco profile:\n{run.stderr[-3000:]}"


def test_every_chapter_runs_on_the_coco_profile_and_records_what_it_ran(coco_book: Path) -> None:
    ledger = pd.concat([pd.read_csv(f, keep_default_na=False) for f in sorted((coco_book / "build" / "ledger").glob("*.csv"))])
    assert set(ledger["profile"]) == {"coco"}
    assert set(ledger["chapter"]) == {
        "2 commercial models",
        "3 single-needle",
        "4 multi-needle",
        "5 needle position",
        "6 caption vs direct",
        "7 MIRAGE",
        "8 cost and speed",
    }
    by_model = ledger.groupby("model")
    assert (by_model.get_group("openai:gpt-4o")["reason"] == "no API key").all()
    llava = by_model.get_group(next(m for m in ledger["model"] if m.startswith("hf:")))
    assert (llava["answered"] > 0).all() and (llava["not_run"] == 0).all()  # the tiny LLaVA answered COCO images in every chapter
    mirage = by_model.get_group("MIRAGE-8.3B")  # the released checkpoint, in every chapter that lists `mirage`
    assert set(mirage["chapter"]) >= {"3 single-needle", "4 multi-needle", "5 needle position", "7 MIRAGE"}
    assert (mirage["answered"] > 0).all() and (mirage["not_run"] == 0).all()
    clip = by_model.get_group("CLIP-L/14-336 + LLaVA")  # a transformers CLIP ranking, LLaVA answering on the top k
    assert (clip["answered"] > 0).all() and (clip["not_run"] == 0).all()


def test_chapters_3_to_5_ask_the_released_questions_and_say_so(coco_book: Path) -> None:
    for name in ("03_single_needle", "05_needle_position"):
        notebook = (coco_book / "out" / f"{name}.ipynb").read_text()
        assert f"the released files of {QUESTIONS_REPO} at commit" in notebook
    # chapter 4 asks no haystack of 5 or more at these sizes: its haystack questions say "none"
    assert "the released files of" not in (coco_book / "out" / "04_multi_needle.ipynb").read_text()


def test_the_last_chapter_tabulates_the_coco_run(coco_book: Path) -> None:
    cells = json.loads((coco_book / "out" / "09_reproducing.ipynb").read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "not run: no API key" in html and "MIRAGE-8.3B" in html
