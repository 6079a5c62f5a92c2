"""The synth models: training reduces loss, checkpoints round-trip, the context rule, data hygiene, retrieval."""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vhs import training, zoo
from vhs.cache import ResponseCache
from vhs.cli import main
from vhs.data import questions as qs
from vhs.data.catalog import PRESENT, Catalog
from vhs.data.kinds import with_article
from vhs.data.profiles import SYNTH_EVAL, SynthSplit
from vhs.errors import VhsError
from vhs.eval.recall import load_retrievers, needle_recall
from vhs.eval.runner import HaystackImages, RunOptions, evaluate
from vhs.models.clip_retrieve import ClipRanker
from vhs.models.synth_caption import SynthCaptionBackend
from vhs.protocol import ImageRef, Request
from vhs.synth.scenes import write_synth_dataset
from vhs.synth_models import data, tokenizer
from vhs.synth_models.caption_lm import CaptionLMConfig, SynthCaptionLM, caption_names, read_captions
from vhs.synth_models.captioner import Captioner, balanced_threshold
from vhs.synth_models.clip import INFERENCE_CHUNK, Clip, ImageEncoder, pad
from vhs.synth_models.data import SYNTH_TRAIN, load_pixels, patch_labels, to_float, training_catalog
from vhs.synth_models.features import encoder_digest, patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.llava import ALIGN_WEIGHT, SynthLlava, alignment, frame, frame_length, word_sums
from vhs.synth_models.lm import LMConfig, TinyLM, last_positions, question_starts
from vhs.synth_models.tokenizer import Tokenizer
from vhs.synth_models.training_questions import in_size_runs, training_questions
from vhs.training import train_model

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def runs(small_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny checkpoints of every synth model, trained for a few steps on the 400-scene fixture."""
    root = tmp_path_factory.mktemp("runs")
    for name, steps in (("synth-clip", 40), ("synth-captioner", 20), ("synth-caption", 64), ("synth-llava", 32)):
        train_model(name, root / name, steps=steps, seed=0, catalog=small_catalog)
    return root


def early_and_late(curve: list[float]) -> tuple[float, float]:
    return float(np.mean(curve[:8])), float(np.mean(curve[-8:]))


def test_every_training_loss_falls(runs: Path) -> None:
    phases = {
        "synth-clip": ["encoder", "align"],
        "synth-captioner": ["train"],
        "synth-caption": ["reading", "haystacks"],
        "synth-llava": ["align", "answer"],
    }
    for name, expected in phases.items():
        curves = json.loads((runs / name / "curve.json").read_text())
        assert list(curves) == expected
        for phase, curve in curves.items():
            early, late = early_and_late(curve)
            assert late < early, f"{name} {phase}: loss {early:.3f} -> {late:.3f}"


def test_training_is_deterministic_for_a_seed(small_catalog: Catalog, tmp_path: Path) -> None:
    for out in ("a", "b"):
        train_model("synth-clip", tmp_path / out, steps=5, seed=3, catalog=small_catalog)
    assert (tmp_path / "a/model.safetensors").read_bytes() == (tmp_path / "b/model.safetensors").read_bytes()


def test_save_then_load_gives_identical_outputs(runs: Path, small_catalog: Catalog, tmp_path: Path) -> None:
    model = SynthLlava.from_pretrained(runs / "synth-llava")
    model.save_pretrained(tmp_path / "copy")
    again = SynthLlava.from_pretrained(tmp_path / "copy")
    pixels = load_pixels(small_catalog, [small_catalog.root / p for p in small_catalog.paths[:2]])
    with torch.no_grad():
        features = [model.image_encoder(to_float(pixels))]
        prompt = [model.prompt_ids("For the image with a red circle, is there a blue star?")]
        assert torch.equal(model.answer_logits(features, prompt), again.answer_logits(features, prompt))
    captioner = Captioner.from_pretrained(runs / "synth-captioner")
    assert captioner.captions(pixels) == Captioner.from_pretrained(runs / "synth-captioner").captions(pixels)
    with pytest.raises(VhsError, match="holds a 'synth-llava' model, not 'synth-clip'"):
        Clip.from_pretrained(runs / "synth-llava")
    with pytest.raises(VhsError, match="no trained model at .*nowhere"):
        Clip.from_pretrained(tmp_path / "nowhere")
    stale = tmp_path / "stale"
    Clip.from_pretrained(runs / "synth-clip").save_pretrained(stale)
    saved = json.loads((stale / "config.json").read_text())
    (stale / "config.json").write_text(json.dumps({**saved, "config": {**saved["config"], "embed": 32}}))
    with pytest.raises(
        VhsError, match="stale holds a synth-clip saved by another version of vhs .*retrain it with `vhs train synth-clip"
    ):
        Clip.from_pretrained(stale)


def test_synth_llava_holds_exactly_three_images(runs: Path, small_catalog: Catalog, small_synth: Path, tmp_path: Path) -> None:
    questions = list(qs.build_question_set(small_catalog, "single", (1, 2, 3, 4, 5), 2, 0, progress=False))
    table = evaluate(
        f"synth-llava:{runs / 'synth-llava'}", questions, ResponseCache(tmp_path / "c.sqlite"), RunOptions(data=small_synth)
    )
    status = table.groupby("size")["status"].agg(set).to_dict()
    assert all(status[size] <= {"ok", "unparsed"} for size in (1, 2, 3))
    assert status[4] == status[5] == {"not_answerable:context"}
    model = SynthLlava.from_pretrained(runs / "synth-llava")
    question = questions[0]["question"]
    assert model.tokens_needed(3, question) <= model.config.context < model.tokens_needed(4, question)
    assert model.tokens_needed(10_000, question) == 10_000 * (64 + 4) + 2 + len(
        model.prompt_ids(question)
    )  # "image 10000 :" counts as 4 words, like "image 1 :"


def test_every_synth_backend_answers_through_the_harness(
    runs: Path, small_catalog: Catalog, small_synth: Path, tmp_path: Path
) -> None:
    questions = list(qs.build_question_set(small_catalog, "single", (1, 3, 20), 4, 0, progress=False))
    cache = ResponseCache(tmp_path / "c.sqlite")
    for model in (
        f"synth-caption:{runs / 'synth-caption'}",
        f"clip-retrieve:{runs / 'synth-clip'}?reader={runs / 'synth-llava'}",
    ):
        table = evaluate(model, questions, cache, RunOptions(data=small_synth))
        small = table[table["size"] <= 3]  # 20 captions may overflow the caption LM's window, as they should
        assert set(small["status"]) == {"ok"} and small["parsed"].notna().all(), model
        assert set(table["status"]) <= {"ok", "not_answerable:context"}, model
    reader_only = evaluate(f"synth-llava:{runs / 'synth-llava'}", questions, cache, RunOptions(data=small_synth))
    assert set(reader_only[reader_only["size"] == 20]["status"]) == {"not_answerable:context"}


def test_needle_recall_is_measured_through_the_specs_that_answer(
    runs: Path, small_catalog: Catalog, small_synth: Path, tmp_path: Path
) -> None:
    spec = f"clip-retrieve:{runs / 'synth-clip'}?reader={runs / 'synth-llava'}"
    retrievers = load_retrievers({"anchor": spec, "question": f"{spec}&query=question"})
    assert "query" not in retrievers["anchor"].identity()["params"]  # answers cached before the option still match
    assert retrievers["question"].identity()["params"]["query"] == "question"
    questions = list(qs.build_question_set(small_catalog, "single", (1, 6), 4, 0, progress=False))
    questions += list(qs.build_question_set(small_catalog, "multi", (6,), 2, 0, progress=False))
    images = HaystackImages(ResponseCache(tmp_path / "c.sqlite"), small_synth)
    table = needle_recall(retrievers, questions, images, ks=(1, 3))
    ranker = ClipRanker(runs / "synth-clip")
    expected = []
    for question in questions:
        request = images.request(question)
        needles = {i for i, image in enumerate(question["image_ids"]) if image in question["needle_ids"]}
        for label, text in (("anchor", with_article(question["anchor"])), ("question", question["question"])):
            order = ranker.scores(request.images, text).argsort(descending=True).tolist()
            found = [len(needles & set(order[:k])) / len(needles) for k in (1, 3)]
            expected += [(label, question["mode"], question["size"], k, share) for k, share in zip((1, 3), found, strict=True)]
    by_hand = pd.DataFrame(expected, columns=["retriever", "mode", "size", "k", "recall"])
    by_hand = by_hand.groupby(["retriever", "mode", "size", "k"])["recall"].agg(recall="mean", questions="count").reset_index()
    pd.testing.assert_frame_equal(table[by_hand.columns], by_hand)
    assert set(table[table["size"] == 1]["recall"]) == {1.0} and set(table["questions"]) == {4, 2}
    assert ((table["ci_low"] <= table["recall"]) & (table["recall"] <= table["ci_high"])).all()
    with pytest.raises(VhsError, match="does not rank"):
        load_retrievers({"yes": "always-yes"})
    with pytest.raises(VhsError, match="query is one of anchor, question"):
        load_retrievers({"caption": f"{spec}&query=caption"})


def test_clip_retrieval_ranks_the_needle_first_on_an_easy_haystack(small_catalog: Catalog, tmp_path: Path) -> None:
    train_model("synth-clip", tmp_path / "clip", steps=150, seed=0, catalog=small_catalog)
    clip = Clip.from_pretrained(tmp_path / "clip")
    counts = (small_catalog.state == PRESENT).sum(1)
    empty = np.flatnonzero(counts == 0)[:9]
    anchor = int(np.argmax((small_catalog.state == PRESENT).sum(0)))
    needle = int(np.flatnonzero((small_catalog.state[:, anchor] == PRESENT) & (counts == 1))[0])
    rows = [*empty[:4], needle, *empty[4:9]]
    pixels = load_pixels(small_catalog, [small_catalog.root / small_catalog.paths[r] for r in rows])
    with torch.no_grad():
        text = clip.encode_text(pad([Tokenizer().encode(with_article(small_catalog.category_names[anchor]))]))[0]
        scores = clip.encode_image(to_float(pixels)) @ text
    assert int(scores.argmax()) == 4


def test_training_never_sees_an_evaluation_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert SYNTH_TRAIN.seed != SYNTH_EVAL.seed
    monkeypatch.setenv("VHS_DATA", str(tmp_path))
    train = training_catalog(split=SynthSplit("train", 300, SYNTH_TRAIN.seed))
    write_synth_dataset(tmp_path / "eval", 300, SYNTH_EVAL.seed, workers=1)
    assert train.root == tmp_path / "synth" / "train"
    assert not image_hashes(train.root) & image_hashes(tmp_path / "eval")


def image_hashes(root: Path) -> set[str]:
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in (root / "images").glob("*.png")}


def test_features_are_computed_once_per_encoder(small_catalog: Catalog) -> None:
    calls = []
    encoders = [ImageEncoder(96), ImageEncoder(96)]
    for encoder in encoders:
        encoder.register_forward_hook(lambda module, inputs, output: calls.append(len(output)))
    first = patch_features(encoders[0], small_catalog, progress=False)
    with torch.no_grad():
        assert torch.allclose(first, encoders[0].eval()(to_float(load_pixels(small_catalog))), atol=1e-5)
    calls.clear()
    assert torch.equal(patch_features(encoders[0], small_catalog), first) and calls == []  # read back, not recomputed
    second = patch_features(encoders[1], small_catalog, progress=False)
    assert sum(calls) == len(small_catalog.image_ids) and not torch.allclose(second, first)
    assert [p.name for p in small_catalog.root.glob("features-*.safetensors")] == [
        f"features-{encoder_digest(encoders[1])}.safetensors"
    ]


def test_a_patch_target_sums_every_object_covering_it() -> None:
    words = torch.randn(4, 3)  # three categories, then "nothing"
    targets = word_sums(torch.tensor([[[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]), words)
    assert (
        torch.allclose(targets[0, 0], words[0] + words[2])
        and torch.equal(targets[0, 1], words[3])
        and torch.equal(targets[0, 2], words[1])
    )


def test_the_alignment_weighs_patches_that_show_an_object_as_much_as_empty_ones() -> None:
    words = torch.randn(3, 4)  # two categories, then "nothing"
    presence = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # one object patch, three empty
    targets = word_sums(presence, words)
    projected = targets.clone()
    projected[0] += torch.tensor([1.0, 1.0, 0.0, 0.0])  # the object patch off by 2 (squared), the empty ones exact
    assert torch.isclose(alignment(projected, presence, words), torch.tensor(ALIGN_WEIGHT * (2.0 + 0.0) / 2))
    projected = targets.clone()
    projected[1:] += 1.0  # every empty patch off by 4
    assert torch.isclose(alignment(projected, presence, words), torch.tensor(ALIGN_WEIGHT * (0.0 + 4.0) / 2))
    assert torch.isclose(
        alignment(targets[1:] + 1.0, presence[1:], words), torch.tensor(ALIGN_WEIGHT * 4.0 / 2)
    )  # no object patch at all


@pytest.mark.parametrize("max_grad_norm", [None, 1.0])
def test_fit_clips_the_gradient_norm_when_asked(max_grad_norm: float | None) -> None:
    weight = torch.nn.Parameter(torch.zeros(10))
    norms = []

    def loss_at(step: int) -> torch.Tensor:
        if step:  # the previous step's gradient, as the optimiser took it
            norms.append(float(weight.grad.norm()))
        return 100 * weight.sum()  # gradient norm 100 * sqrt(10)

    fit([weight], 3, 1e-3, "clip", loss_at, max_grad_norm=max_grad_norm)
    assert norms == pytest.approx([1.0, 1.0] if max_grad_norm else [100 * 10**0.5] * 2)


def test_training_batches_in_size_runs_share_one_haystack_size(small_catalog: Catalog) -> None:
    questions = training_questions(small_catalog, (1, 2, 3), 30, seed=0)
    ordered = in_size_runs(questions, 8, seed=0)
    runs = [ordered[start : start + 8] for start in range(0, len(ordered), 8)]
    assert all(len(run) == 8 and len({q["size"] for q in run}) == 1 for run in runs)
    assert [run[0]["size"] for run in runs] != sorted(run[0]["size"] for run in runs)  # the runs are shuffled
    sizes = [q["size"] for q in questions]
    assert len(ordered) == sum(sizes.count(n) // 8 * 8 for n in (1, 2, 3))  # only each size's incomplete run is dropped
    assert len({q["qid"] for q in ordered}) == len(ordered) and ordered == in_size_runs(questions, 8, seed=0)


def test_patch_labels_follow_the_boxes_and_are_read_back_from_their_cache(
    small_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels = patch_labels(small_catalog)
    assert labels.dtype == torch.float32 and labels.shape == (len(small_catalog.image_ids), 64, len(small_catalog.category_names))
    image_level = labels.amax(1).numpy() > 0
    assert np.array_equal(image_level, small_catalog.state == PRESENT)
    monkeypatch.setattr(data, "_patch_labels", lambda catalog, grid: pytest.fail("parsed the annotations again"))
    assert torch.equal(patch_labels(small_catalog), labels)


def test_an_eval_mode_encoder_sees_every_image_on_its_own_in_chunks(small_catalog: Catalog) -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder(96).eval()
    chunks = []
    encoder.convs.register_forward_hook(lambda module, inputs, output: chunks.append(len(output)))
    pixels = to_float(load_pixels(small_catalog)[: INFERENCE_CHUNK + 6])
    with torch.no_grad():
        together = encoder(pixels)
        alone = torch.cat([encoder(pixels[i : i + 1]) for i in range(len(pixels))])
    assert chunks[:2] == [INFERENCE_CHUNK, 6] and together.shape == (INFERENCE_CHUNK + 6, 64, 96)
    assert torch.allclose(together, alone, atol=1e-5)


def test_unknown_model_and_coco_profile_are_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "synth-gpt", "--out", str(tmp_path)]) == 2
    assert "unknown model 'synth-gpt' to train" in capsys.readouterr().err
    assert main(["train", "synth-llava", "--profile", "coco", "--out", str(tmp_path)]) == 2
    assert "only mirage and mirage-query train on the coco profile" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VHS_DATA", str(tmp_path / "data"))
        assert main(["train", "mirage", "--profile", "coco", "--out", str(tmp_path / "m")]) == 2
    assert "COCO train2017 annotations not found" in capsys.readouterr().err
    assert main(["train", "synth-llava", "--out", str(tmp_path / "x" / "synth-llava")]) == 2
    assert "synth-llava builds on synth-caption, not found" in capsys.readouterr().err


def test_caption_threshold_balances_recall_and_specificity() -> None:
    logits = torch.tensor([[3.0, -1.5, -4.0], [-1.0, -5.0, -3.0]])
    present = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert (
        balanced_threshold(logits, present, torch.ones_like(present, dtype=torch.bool)) == -3.0
    )  # lowest that keeps every negative out
    known = torch.tensor([[True, False, True], [True, True, True]])  # with -1.5 unknown, -3.0 is still the first perfect cut
    assert balanced_threshold(logits, present, known) == -3.0


def test_questions_end_on_the_target_where_the_answer_is_read() -> None:
    tokenizer = Tokenizer()
    ids = tokenizer.question("For the image with a red circle, is there an orange star?")
    assert tokenizer.decode(ids[-1:]) == "orange star"
    assert (
        tokenizer.decode(tokenizer.question("For all images with a red circle, do any of them contain a blue square?")[-1:])
        == "blue square"
    )


def test_synth_caption_counts_a_haystack_too_long_to_number_without_captioning(runs: Path) -> None:
    backend = SynthCaptionBackend(str(runs / "synth-caption"))
    images = tuple(
        ImageRef(i, Path(f"/nowhere/{i}.png"), f"{i:064x}", 0) for i in range(1000)
    )  # unreadable: captioning them would fail
    request = Request("prompt", images, question="For the image with a red circle, is there a blue star?", kind="single")
    assert backend.prompt_tokens(request) == 4000 > backend.limits.context_tokens


def test_captions_read_literally_answer_by_the_images_that_name_the_anchor() -> None:
    captions = ["a red circle , a blue star", "an orange cross", "a red circle", "nothing"]
    single = {"anchor": "red circle", "target": "blue star", "quantifier": None}
    assert caption_names(captions[0]) == {"red circle", "blue star"} and caption_names("nothing") == set()
    assert read_captions(captions, single) == "yes"
    assert read_captions(captions, {**single, "quantifier": "all"}) == "no"  # the third image names the anchor, not the target
    assert read_captions(captions, {**single, "quantifier": "any"}) == "yes"
    assert read_captions(captions[1:], {**single, "target": "orange cross"}) == "no"
    assert read_captions(captions, {**single, "anchor": "green star"}) is None  # no caption names it: the true answer is used


def test_the_lm_computes_only_the_last_real_position_of_each_padded_row_as_the_full_causal_pass_does() -> None:
    torch.manual_seed(0)
    lm = TinyLM(LMConfig(vocab=50))
    lengths = torch.tensor([9, 4, 6])
    x = torch.randn(3, 9, lm.config.width) * (torch.arange(9) < lengths[:, None]).unsqueeze(-1)  # right-padded
    starts = torch.tensor([5, 2, 6])
    with torch.no_grad():
        lm.question.normal_()  # as large as the inputs, so that where it starts shows
    hidden = x + (torch.arange(9) >= starts[:, None]).unsqueeze(-1) * lm.question  # the question marked
    for block in lm.blocks:
        hidden = block(hidden)  # every position, causal
    full = lm.norm(last_positions(hidden, lengths)) @ lm.words.weight.T
    assert torch.allclose(lm(x, lengths, starts), full, atol=1e-5)
    shorter = lm(x[1:2, :4], lengths[1:2], starts[1:2])  # the padding after a row's end changes nothing
    assert torch.allclose(shorter, full[1:2], atol=1e-5)
    assert not torch.allclose(lm(x, lengths, starts + 1), full, atol=1e-3)  # where the question starts matters


def test_a_reader_prompt_marks_its_question_from_the_question_word_on() -> None:
    tokenizer = Tokenizer()
    marker = tokenizer.ids["question"]
    assert question_starts([[5, marker, 7], [marker, 1, marker, 2]], marker).tolist() == [1, 2]  # the last one
    captions = SynthCaptionLM(CaptionLMConfig(categories=["red circle", "blue star"])).prompt_ids(
        ["a red circle", "nothing"], "For the image with a red circle, is there a blue star?"
    )
    start = int(question_starts([captions], marker)[0])
    assert tokenizer.decode(captions[start:]) == "question : for the image with a red circle , is there a blue star"


def test_a_fresh_lm_attends_most_to_earlier_copies_of_the_current_word() -> None:
    torch.manual_seed(0)
    lm = TinyLM(LMConfig(vocab=50))
    block = lm.blocks[0]
    ids = torch.tensor([[7, 3, 9, 12, 5, 30, 3]])  # the last word, 3, also appears at position 1
    q, k, _ = block.qkv(block.norm1(lm.words(ids))).split(lm.config.width, dim=2)
    scores = (q[0, -1] * k[0, :-1]).sum(-1)
    assert int(scores.argmax()) == 1
    assert torch.equal(block.qkv.weight[: lm.config.width], block.qkv.weight[lm.config.width : 2 * lm.config.width])


def test_frame_writes_each_image_block_between_its_caption_words_in_haystack_order() -> None:
    torch.manual_seed(0)
    tokenizer = Tokenizer()
    lm = TinyLM(LMConfig(vocab=len(tokenizer)))
    images = [torch.randn(2, 3, lm.config.width), torch.randn(1, 3, lm.config.width)]
    prompts = [tokenizer.question("For the image with a red circle, is there a blue star?"), [tokenizer.yes]]
    embeddings, lengths, starts = frame(lm, tokenizer, images, prompts)

    def words(text: str) -> torch.Tensor:
        return lm.words(torch.tensor(tokenizer.encode(text)))

    for row, (blocks, prompt) in enumerate(zip(images, prompts, strict=True)):
        parts = [piece for n, block in enumerate(blocks, start=1) for piece in (words(f"image {n} :"), block, words("."))]
        expected = torch.cat([*parts, words("question :"), lm.words(torch.tensor(prompt))])
        assert int(lengths[row]) == len(expected) == frame_length(tokenizer, len(blocks), 3, len(prompt))
        assert int(starts[row]) == len(expected) - len(prompt) - 2  # at "question", before ":" and the prompt
        assert torch.equal(embeddings[row, : len(expected)], expected)


def test_a_checkpoint_of_another_vocabulary_names_the_words_and_the_retraining(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokenizer, "TEMPLATE_WORDS", (*tokenizer.TEMPLATE_WORDS, "none"))
    with pytest.raises(VhsError) as error:
        Clip.from_pretrained(runs / "synth-clip")
    message = str(error.value)
    assert "another synth vocabulary (+'none')" in message and f"vhs train synth-clip --out {runs / 'synth-clip'}" in message


def test_a_checkpoint_records_every_hyperparameter_it_was_trained_with(runs: Path) -> None:
    training = json.loads((runs / "synth-caption" / "config.json").read_text())["training"]
    assert training["steps"] == 64 and training["seed"] == 0
    assert training["hyperparameters"] == {
        "batch": 128,
        "lr": 3e-3,
        "reading_share": 0.5,
        "reading_questions": 20_000,
        "haystack_sizes": [1, 2, 3, 5, 8],
        "haystack_batch": 32,
        "haystack_lr": 1e-3,
        "constants": {"WARMUP": 0.1, "WEIGHT_DECAY": 0.01},
    }
    llava = json.loads((runs / "synth-llava" / "config.json").read_text())["training"]["hyperparameters"]
    assert llava["constants"]["ALIGN_WEIGHT"] == ALIGN_WEIGHT and llava["answer_sizes"] == [1, 1, 2, 3]


def test_train_all_trains_what_is_missing_or_older_than_its_base_and_keeps_an_unchanged_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[str] = []

    def fake_train(name: str, out: Path, steps: int | None, seed: int) -> Path:
        trained.append(name)
        out.mkdir(parents=True, exist_ok=True)
        (out / "model.safetensors").write_bytes(name.encode())
        (out / "config.json").write_text("{}")
        return out

    monkeypatch.setattr(training, "train_model", fake_train)
    order = [m.name for m in zoo.trained()]
    assert training.train_all(tmp_path) == order == trained
    manifest = tmp_path / "models.json"
    assert json.loads(manifest.read_text()) == {name: hashlib.sha256(name.encode()).hexdigest()[:16] for name in order}
    written = manifest.stat().st_mtime_ns
    assert training.train_all(tmp_path) == [] and manifest.stat().st_mtime_ns == written
    os.utime(tmp_path / "synth-caption" / "config.json", ns=(written + 10**9, written + 10**9))
    assert training.train_all(tmp_path) == ["synth-llava", "mirage", "mirage-query"]
    assert manifest.stat().st_mtime_ns == written  # retrained to the same weights: the notebooks need not re-run
