"""The coco MIRAGE (CLIP vision tower + a hub instruct LM) on tiny random configs built here: CLIP's
penultimate patch tokens, the chat framing the LM reads, chunked scoring, save -> load identity,
training, and `vhs eval --model mirage:DIR` on a hub checkpoint."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from vhs.cache import ResponseCache
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.eval.runner import RunOptions, evaluate
from vhs.mirage.hub import HubMirage, HubMirageConfig
from vhs.models.hf_random import TINY, Sizes, write_clip_vision, write_text_lm
from vhs.training import train_model

QUERIES = 4


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> HubMirageConfig:
    """A 2-layer CLIP tower (28x28 images: 4 patches of width 32) and a 2-layer Llama with a chat template."""
    root = tmp_path_factory.mktemp("hub")
    vision = write_clip_vision(root / "clip")
    lm = write_text_lm(root / "lm", Sizes(**{**TINY.__dict__, "context": 512}))
    return HubMirageConfig(
        vision=str(vision), lm=str(lm), queries=QUERIES, qformer_layers=2, qformer_heads=2, retriever_heads=2, chunk=7
    )


@pytest.fixture(scope="module")
def trained(hub: HubMirageConfig, small_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`vhs train mirage --profile coco` on the small synth set read as a COCO-format training catalog."""
    out = tmp_path_factory.mktemp("runs") / "mirage"
    train_model("mirage", out, steps=20, seed=0, catalog=small_catalog, profile="coco", hub=hub)
    return out


def image_paths(catalog: Catalog, count: int) -> list[Path]:
    return [catalog.root / p for p in catalog.paths[:count]]


def test_features_are_clips_second_to_last_layer_without_cls(hub: HubMirageConfig, small_catalog: Catalog) -> None:
    from transformers import CLIPImageProcessor, CLIPVisionModel

    model = HubMirage(hub, device="cpu")
    features = model.encode_paths(image_paths(small_catalog, 3))
    assert features.shape == (3, 4, 32) and features.dtype == torch.float16
    from PIL import Image

    pixels = CLIPImageProcessor.from_pretrained(hub.vision)(
        images=[Image.open(p).convert("RGB") for p in image_paths(small_catalog, 3)], return_tensors="pt"
    )["pixel_values"]
    hidden = CLIPVisionModel.from_pretrained(hub.vision)(pixels, output_hidden_states=True).hidden_states
    assert torch.allclose(features.float(), hidden[-2][:, 1:], atol=1e-2) and not torch.allclose(
        features.float(), hidden[-1][:, 1:], atol=1e-2
    )


def test_the_lm_reads_each_image_in_order_inside_its_chat_template(hub: HubMirageConfig) -> None:
    """Image tokens that are word embeddings give exactly the logits of the same words as text."""
    model = HubMirage(hub, device="cpu")
    words = [model.hf_tokenizer(w, add_special_tokens=False)["input_ids"][:QUERIES] for w in ("red circle dog", "blue star cup")]
    words = [(w * QUERIES)[:QUERIES] for w in words]
    question = model.question_ids("For the image with a dog, is there a cup?")
    pieces = model.frame_ids(2)
    text = [*pieces[0], *words[0], *pieces[1], *words[1], *pieces[2], *question, *pieces[3]]
    assert model.lm_tokens(2, question) == len(text)
    template = model.hf_tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False
    )
    assert model.hf_tokenizer.decode(pieces[-1]) == template.split("x", 1)[1]  # the assistant turn comes last
    assert "Image 2: " in model.hf_tokenizer.decode(pieces[1]) and model.hf_tokenizer.decode(pieces[2]).endswith("Yes or No: ")
    with torch.no_grad():
        kept = torch.stack([model.word_embeddings(torch.tensor(w)) for w in words])
        framed = model.answer_logits([kept], [question])[0]
        swapped = model.answer_logits([kept.flip(0)], [question])[0]
        direct = model.lm(input_ids=torch.tensor([text])).logits[0, -1]
    assert torch.allclose(framed, direct, atol=1e-4) and not torch.allclose(framed, swapped, atol=1e-4)


@pytest.mark.parametrize("compression", ["image", "query"])
def test_chunked_scoring_equals_unchunked(hub: HubMirageConfig, compression: str) -> None:
    torch.manual_seed(0)
    chunked = HubMirage(HubMirageConfig(**{**hub.__dict__, "compression": compression, "chunk": 7}), device="cpu").eval()
    whole = HubMirage(HubMirageConfig(**{**hub.__dict__, "compression": compression, "chunk": 1000}), device="cpu").eval()
    whole.load_state_dict(chunked.state_dict())
    features, question = torch.randn(30, 4, 32).half(), chunked.question_ids("For the image with a dog, is there a cup?")
    with torch.no_grad():
        tokens = chunked.compress(features, question)
        assert tokens.shape == (30, QUERIES, 32)
        assert torch.allclose(tokens, whole.compress(features, question), atol=1e-5)
        assert torch.allclose(chunked.relevance(tokens, question), whole.relevance(tokens, question), atol=1e-5)


def test_training_losses_fall_and_only_the_trained_parts_are_saved(trained: Path) -> None:
    curves = json.loads((trained / "curve.json").read_text())
    assert np.mean(curves["captions"][-3:]) < np.mean(curves["captions"][:3])
    assert len(curves["retrieval"]) == 4 and len(curves["lm"]) == len(curves["cotrain"]) == 8
    saved = json.loads((trained / "config.json").read_text())
    assert saved["kind"] == "mirage-hub" and saved["training"]["train_split"] == "COCO train2017"
    from safetensors import safe_open

    with safe_open(trained / "model.safetensors", "pt") as handle:
        assert {key.split(".")[0] for key in handle.keys()} == {"qformer", "projector", "retriever"}  # noqa: SIM118 (a safe_open handle is not iterable)


def test_save_then_load_gives_identical_outputs(trained: Path, tmp_path: Path) -> None:
    model = HubMirage.from_pretrained(trained, device="cpu")
    model.save_pretrained(tmp_path / "copy")
    copy = HubMirage.from_pretrained(tmp_path / "copy", device="cpu")
    torch.manual_seed(1)
    features, question = torch.randn(9, 4, 32), model.question_ids("For the image with a dog, is there a cup?")
    with torch.no_grad():
        tokens = model.compress(features)
        assert torch.equal(model.relevance(tokens, question), copy.relevance(copy.compress(features), question))
        assert torch.equal(model.answer_logits([tokens[:2]], [question]), copy.answer_logits([tokens[:2]], [question]))


def test_vhs_eval_runs_the_coco_mirage_and_reports_what_it_kept(trained: Path, small_catalog: Catalog, tmp_path: Path) -> None:
    questions = list(qs.build_question_set(small_catalog, "single", (1, 20), 2, 0, progress=False))
    questions += list(qs.build_question_set(small_catalog, "multi", (20,), 2, 0, progress=False))
    spec = f"mirage:{trained}?store={tmp_path / 'store'}&device=cpu"
    results = evaluate(spec, questions, ResponseCache(tmp_path / "cache.sqlite"), RunOptions())
    assert (results["status"] == "ok").all() and set(results["parsed"]) <= {"yes", "no"}
    for question, row in zip(questions, results.itertuples(), strict=True):
        kept = [int(i) for i in row.kept_ids.split()]
        assert set(kept) <= set(question["image_ids"]) and 1 <= len(kept) <= (1 if question["mode"] == "single" else 3)
