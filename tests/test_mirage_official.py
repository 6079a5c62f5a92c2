"""The released MIRAGE-8.3B (`mirage-official`): its names and shapes at the released size (on the meta
device, nothing allocated), a tiny random checkpoint in the released layout loaded strictly through
`from_pretrained`, the official prompt and selection, `vhs eval` end to end, and the download path
through a stand-in Hub on 127.0.0.1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

pytest.importorskip("transformers")

from tests.fake_hub import hub_serving, released_mirage
from vhs.cache import ResponseCache
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.data.questions import PROMPT_PREFIX
from vhs.data.released import MIRAGE_REPO
from vhs.eval.runner import RunOptions, evaluate
from vhs.mirage import official
from vhs.mirage.official import (
    OfficialMirageConfig,
    OfficialMirageForCausalLM,
    ReleasedMirage,
    StrictLoadError,
    load_strictly,
    missing_weights,
)
from vhs.models.hf_random import write_clip_vision, write_official_mirage
from vhs.models.mirage_official import OfficialMirageBackend

QUESTION = "Is there a dog?"


@pytest.fixture(scope="module")
def released(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MIRAGE in the released layout (4 queries, a 2-layer retriever) beside a tiny CLIP."""
    root = tmp_path_factory.mktemp("released")
    return write_official_mirage(root / "mirage", write_clip_vision(root / "clip"))


@pytest.fixture(scope="module")
def mirage(released: Path) -> ReleasedMirage:
    return ReleasedMirage(str(released), device="cpu")


def image_paths(catalog: Catalog, count: int) -> list[Path]:
    return [catalog.root / p for p in catalog.paths[:count]]


def test_at_the_released_size_every_part_has_the_released_name_and_shape() -> None:
    llama = {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32}
    config = OfficialMirageConfig(num_key_value_heads=8, vocab_size=128256, **llama)
    with torch.device("meta"):
        model = OfficialMirageForCausalLM(config)
    shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
    assert shapes["model.qformer.query_tokens.weight.weight"] == (32, 1024)
    assert shapes["model.qformer.qformer.layernorm.weight"] == (1024,)
    assert shapes["model.qformer.qformer.encoder.layer.0.crossattention.attention.key.weight"] == (1024, 1024)
    assert shapes["model.qformer.qformer.encoder.layer.3.intermediate_query.dense.weight"] == (1024, 1024)
    crossing = {n.split(".")[5] for n in shapes if ".crossattention." in n}
    assert crossing == {"0", "2"}  # cross-attention every second of 4 layers
    assert shapes["model.mm_projector.0.weight"] == (4096, 1024) and shapes["model.mm_projector.2.weight"] == (4096, 4096)
    retriever = "model.retriever."
    assert shapes[retriever + "pos_encoder.positional_encoding"] == (5000, 4096)
    assert shapes[retriever + "text_projector.weight"] == (4096, 4096)
    assert shapes[retriever + "output_layer.weight"] == (1, 4096)
    assert shapes[retriever + "transformer_encoder.layers.11.linear1.weight"] == (2048, 4096)
    assert shapes[retriever + "transformer_encoder.layers.11.self_attn.in_proj_weight"] == (3 * 4096, 4096)
    assert not any(n.startswith(retriever + "transformer_encoder.layers.12.") for n in shapes)
    assert shapes["model.embed_tokens.weight"] == (128256, 4096) and shapes["lm_head.weight"] == (128256, 4096)


def test_the_tiny_checkpoint_has_the_released_keys_and_loads_strictly(released: Path) -> None:
    saved = set(load_file(released / "model.safetensors"))
    assert any(k.startswith("model.retriever.encoder_layer.") for k in saved)  # the template layer, as released
    config = json.loads((released / "config.json").read_text())
    assert config["model_type"] == "llava_llama" and config["mm_qformer"] and config["mm_retriever"]
    model = load_strictly(str(released), torch.float32)
    assert set(model.state_dict()) == {k for k in saved if not k.startswith("model.retriever.encoder_layer.")}


@pytest.mark.parametrize("change", ["renamed", "removed", "extra", "reshaped"])
def test_a_key_that_differs_from_ours_fails_in_one_line(released: Path, tmp_path: Path, change: str) -> None:
    state = load_file(released / "model.safetensors")
    key = "model.retriever.text_projector.weight"
    if change == "renamed":
        state["model.retriever.text_proj.weight"] = state.pop(key)
    elif change == "removed":
        del state[key]
    elif change == "extra":
        state["model.retriever.extra.weight"] = torch.zeros(2)
    else:
        state[key] = torch.zeros(3, 3)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (broken / name).write_bytes((released / name).read_bytes())
    save_file(state, broken / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(StrictLoadError) as error:
        load_strictly(str(broken), torch.float32)
    assert "\n" not in str(error.value) and "in the checkpoint" in str(error.value)


def test_the_conversation_is_the_official_llama3_one_with_bos_once(mirage: ReleasedMirage) -> None:
    before, after = mirage.frame_ids(QUESTION)
    decode = mirage.tokenizer.decode
    assert before[0] == mirage.tokenizer.bos_token_id and mirage.tokenizer.bos_token_id not in after
    assert decode(before, skip_special_tokens=True) == f"{official.SYSTEM} USER: "
    assert decode(after) == f"\n{PROMPT_PREFIX}{QUESTION} ASSISTANT:"
    assert mirage.lm_tokens(3, QUESTION) == len(before) + 3 * mirage.queries + len(after)


def test_scoring_in_chunks_equals_scoring_at_once(
    mirage: ReleasedMirage, small_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = mirage.image_tokens(image_paths(small_catalog, 11))
    assert tokens.shape == (11, mirage.queries, mirage.config.hidden_size) and tokens.device.type == "cpu"
    whole = mirage.scores(tokens, QUESTION)
    monkeypatch.setattr(official, "CHUNK", 4)
    assert torch.allclose(mirage.scores(tokens, QUESTION), whole, atol=1e-6)
    assert whole.shape == (11,) and ((whole > 0) & (whole < 1)).all() and whole.std() > 0


def test_the_kept_images_follow_the_official_rule(mirage: ReleasedMirage, small_catalog: Catalog) -> None:
    tokens = mirage.image_tokens(image_paths(small_catalog, 9))
    scores = mirage.scores(tokens, QUESTION)
    for keep in (1, 3):
        kept, ids = mirage.answer(tokens, QUESTION, keep, max_new_tokens=3)
        above = (scores >= 0.5).nonzero().flatten().tolist()
        expected = [int(scores.argmax())] if not above else scores.topk(min(keep, len(scores))).indices.tolist()
        assert sorted(kept) == sorted(expected) and 1 <= len(ids) <= 3


def test_vhs_eval_answers_a_synth_haystack_and_records_what_it_kept(released: Path, small_catalog: Catalog, env: Path) -> None:
    questions = list(qs.build_question_set(small_catalog, "single", (1, 30), 4, 0, progress=False))
    questions += list(qs.build_question_set(small_catalog, "multi", (30,), 2, 0, progress=False))
    spec = f"mirage-official:{released}?max_new_tokens=3"
    cache = ResponseCache(env / "cache.sqlite")
    first = evaluate(spec, questions, cache, RunOptions())
    assert first["status"].isin(["ok", "unparsed"]).all() and len(first) == len(questions)  # random weights
    for question, row in zip(questions, first.itertuples(), strict=True):
        kept = [int(i) for i in row.kept_ids.split()]
        assert set(kept) <= set(question["image_ids"]) and 1 <= len(kept) <= (1 if question["mode"] == "single" else 3)
        assert row.images_sent == len(kept)
        assert row.needle_recall == len(set(kept) & set(question["needle_ids"])) / len(question["needle_ids"])
    again = evaluate(spec, questions, cache, RunOptions())
    assert again["cached"].all() and list(again["kept_ids"]) == list(first["kept_ids"])
    store = OfficialMirageBackend(str(released), max_new_tokens="3").store
    assert len(store.rows) == len({i for q in questions for i in q["image_ids"]}) and store.computed == 0


def test_vhs_data_mirage_official_downloads_the_checkpoint_and_its_clip_then_eval_runs_offline(
    released: Path, small_synth: Path, tmp_path: Path
) -> None:
    hub = released_mirage(released)
    checkpoint = hub[MIRAGE_REPO].revisions["main"]
    env = os.environ | {"HF_HOME": str(tmp_path / "hf"), "VHS_DATA": str(tmp_path / "data")}
    env.pop("HF_HUB_OFFLINE", None)

    def vhs(*argv: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "vhs.cli", *argv], env=env | extra, capture_output=True, text=True)

    with hub_serving(hub, cut_first=frozenset({"model.safetensors"})) as server:
        fetched = vhs("data", "mirage-official", HF_ENDPOINT=server.endpoint)
        assert fetched.returncode == 0, fetched.stderr
        gets = [
            p for m, p, _ in server.requests if m == "GET" and p.startswith(f"/{MIRAGE_REPO}/") and p.endswith(".safetensors")
        ]
        assert len(gets) == 2  # cut off once, then fetched whole
    cached = next((tmp_path / "hf" / "hub").glob("models--tsunghanwu--mirage*/snapshots/*/model.safetensors"))
    assert cached.read_bytes() == checkpoint["model.safetensors"]
    questions = tmp_path / "q.jsonl"
    made = vhs("questions", "--sizes", "1,5", "--per-size", "2", "--out", str(questions), "--data", str(small_synth))
    assert made.returncode == 0, made.stderr
    out = tmp_path / "r.parquet"
    argv = ("eval", "--model", "mirage-official?max_new_tokens=2", "--questions", str(questions), "--out", str(out))
    evaluated = vhs(*argv, "--data", str(small_synth), HF_HUB_OFFLINE="1")
    assert evaluated.returncode == 0, evaluated.stderr
    table = pd.read_parquet(out)
    assert len(table) == 4 and table["kept_ids"].notna().all()


def test_weights_that_are_not_downloaded_are_named_without_a_download(released: Path, tmp_path: Path) -> None:
    assert missing_weights(str(released)) is None
    assert missing_weights("someone/not-here") == (
        "weights absent: someone/not-here is not downloaded (`vhs data mirage-official` on a GPU box)"
    )
    elsewhere = tmp_path / "no-clip"
    elsewhere.mkdir()
    config = json.loads((released / "config.json").read_text())
    (elsewhere / "config.json").write_text(json.dumps(config | {"mm_vision_tower": "someone/no-clip"}))
    assert (
        missing_weights(str(elsewhere))
        == "weights absent: its CLIP someone/no-clip is not downloaded (`vhs data mirage-official`)"
    )
