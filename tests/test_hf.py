"""The `hf` and `caption` backends on tiny random transformers models built here (nothing downloaded)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("transformers")

from vhs.cli import main
from vhs.models.caption import CaptionBackend
from vhs.models.hf import HFBackend
from vhs.models.hf_random import TINY, Sizes, write_llava, write_text_lm
from vhs.protocol import ImageRef, Request

CONTEXT = 64  # small enough that a handful of 4-token images fill it


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    sizes = Sizes(**{**TINY.__dict__, "context": CONTEXT})
    return {
        "llava": write_llava(root / "llava", sizes),
        "lm": write_text_lm(root / "lm", Sizes(**{**TINY.__dict__, "context": 512})),
    }


@pytest.fixture(scope="module")
def llava(models) -> HFBackend:
    return HFBackend(str(models["llava"]), max_new_tokens="4")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[ImageRef]:
    root = tmp_path_factory.mktemp("images")
    refs = []
    rng = np.random.default_rng(0)
    for i in range(12):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (30 + i, 40, 3), dtype=np.uint8)).save(path)
        refs.append(ImageRef(i, path, f"sha{i}", path.stat().st_size))
    return refs


def test_prompt_puts_images_first_in_haystack_order_then_the_question(llava, images):
    assert llava.chat("Is there a dog?", 2) == "USER: <image>\n<image>\nIs there a dog? ASSISTANT:"
    seen = []
    hook = llava.model.model.vision_tower.register_forward_hook(lambda module, args, kwargs_out: seen.append(args[0].clone()))
    try:
        llava.generate_batch([Request("Is there a dog?", tuple(images[2:5]))])
    finally:
        hook.remove()
    expected = llava.processor.image_processor([Image.open(i.path).convert("RGB") for i in images[2:5]], return_tensors="pt")[
        "pixel_values"
    ]
    assert torch.allclose(seen[0], expected)


def test_context_rule_admits_exactly_the_images_that_fit(llava, images):
    request = lambda n: Request("Is there a dog?", tuple(images[:n]))  # noqa: E731
    fits = [n for n in range(1, 12) if llava.prompt_tokens(request(n)) <= CONTEXT]
    real = [
        n
        for n in range(1, 12)
        if len(
            llava.processor(
                text=[llava.chat("Is there a dog?", n)], images=[Image.open(i.path).convert("RGB") for i in images[:n]]
            )["input_ids"][0]
        )
        <= CONTEXT
    ]
    assert llava.limits.context_tokens == CONTEXT
    assert fits == real == list(range(1, 11))  # 5 tokens per image (4 patches + newline) beside 14 others: (64 - 14) // 5


def test_greedy_answers_are_deterministic_and_batching_does_not_change_them(models, llava, images):
    requests = [Request("Is there a dog?", tuple(images[:2])), Request("Yes or No?", (images[5],))]
    again = HFBackend(str(models["llava"]), max_new_tokens="4")
    assert [r.text for r in llava.generate_batch(requests)] == [r.text for r in again.generate_batch(requests)]
    assert [llava.generate(r).text for r in requests] == [r.text for r in llava.generate_batch(requests)]


def test_missing_model_is_a_one_line_error(tmp_path):
    from vhs.errors import VhsError
    from vhs.models.registry import load_backend

    with pytest.raises(VhsError, match="cannot load") as caught:
        load_backend(f"hf:{tmp_path / 'nowhere'}")
    assert "\n" not in str(caught.value)


def test_caption_baseline_captions_each_image_once_and_numbers_them_in_order(models, images, tmp_path):
    backend = CaptionBackend(
        str(models["llava"]),
        llm=f"hf:{models['lm']}",
        cache=str(tmp_path / "captions.sqlite"),
        batch_size="4",
        caption_tokens="5",
    )
    haystacks = [Request("Q1?", tuple(images[:3])), Request("Q2?", (images[2], images[0], images[6]))]
    calls = []
    original = backend.captioner.generate_batch
    backend.captioner.generate_batch = lambda requests: calls.append(len(requests)) or original(requests)
    backend.generate_batch(haystacks)
    assert sum(calls) == 4  # images 0, 1, 2, 6: each captioned once
    captions = backend.captions(haystacks[1].images)
    assert backend.llm_request(haystacks[1]).prompt == "\n".join(f"Image {n}: {c}" for n, c in enumerate(captions, 1)) + "\nQ2?"
    fresh = CaptionBackend(
        str(models["llava"]),
        llm=f"hf:{models['lm']}",
        cache=str(tmp_path / "captions.sqlite"),
        batch_size="4",
        caption_tokens="5",
    )
    fresh.captioner.generate_batch = lambda requests: pytest.fail("a cached caption was computed again")
    assert fresh.captions(haystacks[1].images) == captions


def test_caption_baseline_enforces_the_llms_context(models, images, tmp_path):
    backend = CaptionBackend(
        str(models["llava"]), llm=f"hf:{models['lm']}?context=60", cache=str(tmp_path / "c.sqlite"), caption_tokens="5"
    )
    short, long = Request("Q?", (images[0],)), Request("Q?", tuple(images[:10]))
    assert backend.prompt_tokens(short) <= 60 < backend.prompt_tokens(long)


def test_vhs_eval_runs_a_tiny_llava_end_to_end(models, small_synth, tmp_path):
    questions = tmp_path / "q.jsonl"
    assert main(["questions", "--sizes", "1,2,10", "--per-size", "2", "--out", str(questions), "--data", str(small_synth)]) == 0
    out = tmp_path / "r.parquet"
    args = [
        "eval",
        "--model",
        f"hf:{models['llava']}?max_new_tokens=2",
        "--questions",
        str(questions),
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "c.sqlite"),
        "--data",
        str(small_synth),
    ]
    assert main(args) == 0
    import pandas as pd

    table = pd.read_parquet(out)
    assert list(table["status"]) == ["unparsed"] * 4 + ["not_answerable:context"] * 2  # random weights answer gibberish
    assert table["images_sent"].tolist()[:4] == [1, 1, 2, 2]
    assert main(args) == 0  # a second run answers every question from the cache
    assert pd.read_parquet(out)["cached"].sum() == 4


def test_clip_retrieve_with_a_transformers_clip_ranks_by_its_embeddings_and_the_reader_answers_the_top_k(
    models, images, tmp_path
) -> None:
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    from vhs.models.clip_retrieve import ClipRetrieveBackend
    from vhs.models.hf_random import write_clip
    from vhs.protocol import open_rgb

    clip = write_clip(tmp_path / "clip")
    backend = ClipRetrieveBackend(str(clip), reader=f"hf:{models['llava']}", store=str(tmp_path / "store"))
    request = Request("For the image with a dog, is there a cat?", tuple(images[:6]), kind="all", anchor="dog")
    scores = backend.relevance(request)
    model, tokenizer = CLIPModel.from_pretrained(clip), AutoTokenizer.from_pretrained(clip)
    pixels = CLIPImageProcessor.from_pretrained(clip)(images=[open_rgb(i.path) for i in images[:6]], return_tensors="pt")
    with torch.no_grad():
        embedded = model.visual_projection(model.vision_model(**pixels).pooler_output)
        text = model.text_projection(model.text_model(**tokenizer(["a dog"], return_tensors="pt")).pooler_output)
    embedded, text = (torch.nn.functional.normalize(x, dim=-1) for x in (embedded, text))
    assert torch.allclose(scores, (embedded @ text[0]), atol=1e-5)
    reply = backend.generate(request)
    assert reply.kept == tuple(sorted(scores.argsort(descending=True)[:3].tolist())) and reply.images_sent == 3
    assert backend.ranker.embeddings.computed == 6  # each image embedded once, then read from the store
    assert backend.identity()["params"]["reader"]["backend"] == "hf"


def test_device_map_auto_places_the_model_through_accelerate_and_answers_as_before(models, llava, images, monkeypatch) -> None:
    from transformers import AutoModelForImageTextToText

    given = []
    load = AutoModelForImageTextToText.from_pretrained
    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", lambda *a, **k: given.append(k) or load(*a, **k))
    placed = HFBackend(str(models["llava"]), max_new_tokens="4", device_map="auto")
    assert given[0]["device_map"] == "auto" and placed.device == "cpu"  # accelerate found no GPU here
    assert placed.batch_size == llava.batch_size == 1  # auto: one haystack per generate call on the CPU
    request = Request("For the image with a dog, is there a cat?", tuple(images[:2]))
    assert placed.generate(request).text == llava.generate(request).text
    assert placed.identity() == llava.identity()  # where the layers sit is not part of what the answers depend on


def test_clip_retrieve_by_default_is_the_clip_trained_here_even_before_it_is(tmp_path, monkeypatch) -> None:
    from vhs.errors import VhsError
    from vhs.models.clip_retrieve import ClipRetrieveBackend

    monkeypatch.chdir(tmp_path)  # no runs/ here: not a hub id to download
    with pytest.raises(VhsError, match=r"^no trained model at runs/synth-clip \(run `vhs train synth-clip"):
        ClipRetrieveBackend()
