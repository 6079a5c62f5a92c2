"""The coco profile end to end on a tiny COCO directory: every chapter executed by papermill with
`profile=coco`, as `make reproduce PROFILE=coco` runs them, with tiny random transformers models
standing in for LLaVA-1.5 and Llama-3 and no API key set. The released MIRAGE-8.3B is a tiny random
checkpoint in its layout, fetched by `vhs data mirage-official` from a stand-in Hub into the Hub's
cache, as on a GPU box; the chapters then run offline."""

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
from tests.fake_hub import hub_serving, released_mirage
from vhs.models.hf_random import TINY, Sizes, write_clip_vision, write_llava, write_official_mirage, write_text_lm

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))


@pytest.fixture(scope="module")
def coco_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every chapter executed on the coco profile in a scratch directory; returns that directory."""
    work = tmp_path_factory.mktemp("coco-book")
    write_coco_dataset(work / "data" / "coco", images=60)
    llava = write_llava(work / "llava", Sizes(**{**TINY.__dict__, "context": 2048}))
    lm = write_text_lm(work / "lm", Sizes(**{**TINY.__dict__, "context": 4096}))
    models = f"hf:{llava}?max_new_tokens=2,caption:{llava}?llm=hf:{lm}&caption_tokens=4,mirage,clip-retrieve,openai:gpt-4o"
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENV} | {
        "VHS_DATA": str(work / "data"),
        "MPLBACKEND": "Agg",
        "HF_HOME": str(work / "hf"),
    }
    released = write_official_mirage(work / "mirage", write_clip_vision(work / "clip"))
    with hub_serving(released_mirage(released)) as hub:
        fetch = [sys.executable, "-m", "vhs.cli", "data", "mirage-official"]
        subprocess.run(fetch, check=True, env=env | {"HF_ENDPOINT": hub.endpoint}, capture_output=True)
    env["HF_HUB_OFFLINE"] = "1"
    (work / "in").mkdir()
    (work / "out").mkdir()
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
    return work


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
    assert (by_model.get_group("clip-retrieve")["reason"] == "not built for this profile yet").all()


def test_the_last_chapter_tabulates_the_coco_run(coco_book: Path) -> None:
    cells = json.loads((coco_book / "out" / "09_reproducing.ipynb").read_text())["cells"]
    outputs = [o for c in cells if c["cell_type"] == "code" for o in c.get("outputs", [])]
    html = "".join("".join(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "not run: no API key" in html and "not run: not built for this profile yet" in html
