"""torchrun on the CPU (2 processes, gloo): `vhs eval` gives the rows of one process, one results table and one
response cache that a re-run reads back; the coco MIRAGE trains data-parallel with its ranks' weights equal."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("transformers")

from vhs.cli import main
from vhs.data.catalog import Catalog
from vhs.eval.distributed import share
from vhs.eval.runner import RunOptions
from vhs.metrics import SCORED
from vhs.models.hf_random import write_llava
from vhs.parallel import Ranks
from vhs.training import train_model

VHS = Path(sys.executable).parent / "vhs"
TIMED = ["latency"]  # seconds differ from run to run; every other column must not


@pytest.fixture(scope="module")
def questions(small_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eleven haystacks (an odd count, so the two ranks hold different numbers), single and multi needle."""
    out = tmp_path_factory.mktemp("questions")
    single, multi = out / "single.jsonl", out / "multi.jsonl"
    data = ["--data", str(small_synth)]
    assert main(["questions", "--sizes", "1,2,3", "--per-size", "2", "--out", str(single), *data]) == 0
    assert main(["questions", "--mode", "multi", "--sizes", "5", "--per-size", "6", "--out", str(multi), *data]) == 0
    both = out / "both.jsonl"
    lines = single.read_text().splitlines() + multi.read_text().splitlines()[:5]
    both.write_text("\n".join(lines) + "\n")
    return both


@pytest.fixture(scope="module")
def models(small_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A tiny random LLaVA (the hf backend) and a synth-llava trained for a few steps."""
    root = tmp_path_factory.mktemp("models")
    for name, steps in (("synth-clip", 20), ("synth-captioner", 10), ("synth-caption", 16), ("synth-llava", 8)):
        train_model(name, root / name, steps=steps, seed=0, catalog=small_catalog)
    return {"hf": f"hf:{write_llava(root / 'llava')}?max_new_tokens=2", "synth-llava": f"synth-llava:{root / 'synth-llava'}"}


def vhs_eval(processes: int, model: str, questions: Path, out: Path, cache: Path, data: Path) -> pd.DataFrame:
    """`vhs eval` as a user runs it, alone or under `torchrun --nproc-per-node K`: its table, after checking that
    each rank answered its own share and that one of them wrote the table."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
    argv = [str(VHS), "eval", "--model", model, "--questions", str(questions), "--out", str(out), "--cache", str(cache)]
    command = (launcher if processes > 1 else []) + argv + ["--data", str(data)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    table = pd.read_parquet(out)
    assert run.stdout.count(f"wrote {len(table)} results") == 1
    if processes > 1:
        for rank in range(processes):
            share = len(range(rank, len(table), processes))
            assert f"rank {rank} of {processes}: {share} of {len(table)} questions" in run.stderr
    return table


@pytest.mark.parametrize("backend", ["hf", "synth-llava"])
def test_two_ranks_give_the_rows_of_one_process_and_share_one_cache(
    backend: str, models: dict[str, str], questions: Path, small_synth: Path, tmp_path: Path
) -> None:
    alone = vhs_eval(1, models[backend], questions, tmp_path / "alone.parquet", tmp_path / "alone.sqlite", small_synth)
    ranked = vhs_eval(2, models[backend], questions, tmp_path / "ranked.parquet", tmp_path / "ranked.sqlite", small_synth)
    assert len(alone) == 11 and not ranked["cached"].any()
    pd.testing.assert_frame_equal(ranked.drop(columns=TIMED), alone.drop(columns=TIMED))
    again = vhs_eval(2, models[backend], questions, tmp_path / "again.parquet", tmp_path / "ranked.sqlite", small_synth)
    answered = again["status"].isin(SCORED)  # synth-llava's window takes 3 images: size 5 is not answerable, nor cached
    assert answered.sum() >= 6 and again.loc[answered, "cached"].all()  # both ranks' answers are in the one cache
    assert list(again["raw"]) == list(ranked["raw"])


def test_a_rank_takes_every_kth_question_after_the_limit_and_its_share_of_the_caps() -> None:
    questions = [{"qid": str(i)} for i in range(11)]
    options = RunOptions(limit=9, max_requests=5, max_usd=1.0)
    first, first_options = share(questions, options, Ranks(0, 2, 0))
    second, second_options = share(questions, options, Ranks(1, 2, 1))
    assert [q["qid"] for q in first] == ["0", "2", "4", "6", "8"] and [q["qid"] for q in second] == ["1", "3", "5", "7"]
    assert (first_options.max_requests, second_options.max_requests) == (3, 2)  # 5 requests in all
    assert first_options.max_usd == second_options.max_usd == 0.5 and first_options.limit is None


TRAIN = """
import hashlib, json, sys
from vhs import parallel
from vhs.data.profiles import load_profile_catalog
from vhs.mirage.hub import HubMirageConfig
from vhs.mirage.train import train_hub_mirage

ranks = parallel.launched() or parallel.ALONE
if ranks.world > 1:
    parallel.join(ranks)
catalog = load_profile_catalog("synth", sys.argv[1])
model, curves = train_hub_mirage(catalog, 20, 0, HubMirageConfig(**json.loads(sys.argv[2])), device="cpu", images=120)
weights = b"".join(p.detach().contiguous().numpy().tobytes() for p in model.parameters())
with open(f"{sys.argv[3]}/rank{ranks.rank}.json", "w") as out:
    json.dump({"digest": hashlib.sha256(weights).hexdigest(), "curves": curves}, out)
parallel.leave()
"""


def test_two_ranks_train_the_coco_mirage_data_parallel_and_keep_equal_weights(small_synth: Path, tmp_path: Path) -> None:
    import json

    from vhs.models.hf_random import TINY, Sizes, write_clip_vision, write_text_lm

    config = {
        "vision": str(write_clip_vision(tmp_path / "clip")),
        "lm": str(write_text_lm(tmp_path / "lm", Sizes(**{**TINY.__dict__, "context": 512}))),
        "queries": 4,
        "qformer_layers": 2,
        "qformer_heads": 2,
        "retriever_heads": 2,
        "chunk": 7,
    }
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    runs = {}
    for processes in (1, 2):
        out = tmp_path / f"ranks{processes}"
        out.mkdir()
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
        argv = [str(script), str(small_synth), json.dumps(config), str(out)]
        command = (launcher if processes > 1 else [sys.executable]) + argv
        run = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stderr[-3000:]
        runs[processes] = [json.loads((out / f"rank{r}.json").read_text()) for r in range(processes)]
    first, second = runs[2]
    assert first["digest"] == second["digest"]  # the ranks stepped with the same averaged gradients
    assert first["digest"] != runs[1][0]["digest"]  # ... of batches that differ from one process's
    assert first["curves"]["captions"] != second["curves"]["captions"]  # each rank's own batches
    captions = first["curves"]["captions"]
    assert sum(captions[-3:]) < sum(captions[:3])  # and the loss falls
