"""MIRAGE: the selection rule, the loss weighting, the noise, chunked scoring, the feature store,
save -> load identity, and `vhs eval --model mirage:DIR` reporting what it kept."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vhs.book import image_tokens
from vhs.cache import ResponseCache
from vhs.data import questions as qs
from vhs.data.catalog import Catalog
from vhs.eval.runner import RunOptions, evaluate
from vhs.mirage.compressor import Attention
from vhs.mirage.model import Mirage, MirageConfig
from vhs.mirage.retriever import Retriever, select
from vhs.mirage.store import FeatureStore
from vhs.mirage.train import NOISE_FRACTION, caption_alignment, relevance_loss, slot_targets, with_noise
from vhs.models.mirage import MirageBackend
from vhs.protocol import ImageRef
from vhs.training import train_model

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def runs(small_catalog: Catalog, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth-clip -> captioner -> caption, then both MIRAGE variants, a few steps each on the fixture."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VHS_DATA", str(tmp_path_factory.mktemp("data")))  # the held-out split is generated here
        for name, steps in (
            ("synth-clip", 20),
            ("synth-captioner", 10),
            ("synth-caption", 16),
            ("mirage", 24),
            ("mirage-query", 20),
        ):
            train_model(name, root / name, steps=steps, seed=0, catalog=small_catalog)
    return root


def test_selection_keeps_the_best_when_none_passes_else_the_top_k() -> None:
    assert select(torch.tensor([0.1, 0.3, 0.2]), k=3) == [1]
    assert select(torch.tensor([0.6, 0.1, 0.9, 0.7]), k=3) == [0, 2, 3]  # haystack order, not score order
    assert select(torch.tensor([0.6, 0.1, 0.9, 0.7]), k=1) == [2]
    assert select(torch.tensor([0.5, 0.1]), k=1) == [0]  # 0.5 passes
    assert select(torch.tensor([0.9, 0.2]), k=3) == [0, 1]  # top-k of all, even below the threshold
    assert select(torch.tensor([]), k=1) == []


def test_a_fresh_retriever_tells_the_anchor_from_the_target_and_matches_its_word() -> None:
    torch.manual_seed(0)
    retriever = Retriever(width=16, tokens=2, max_question=6, layers=2, heads=2)
    words = torch.randn(1, 6, 16)
    swapped = words[:, [0, 1, 5, 3, 4, 2]]  # the anchor (word 2) and the target (word 5) trade places
    images = torch.randn(3, 2, 16)
    assert not torch.allclose(retriever(images, words), retriever(images, swapped))
    assert torch.equal(retriever.question.weight, torch.eye(16))
    weight = retriever.encoder.layers[0].self_attn.in_proj_weight
    assert torch.equal(weight[:16], weight[16:32])


def test_a_missed_needle_costs_five_times_a_false_alarm() -> None:
    zero = torch.zeros(1)
    positive, negative = relevance_loss(zero, torch.ones(1)), relevance_loss(zero, torch.zeros(1))
    assert torch.isclose(positive, 5 * negative)
    assert torch.isclose(negative, torch.log(torch.tensor(2.0)))


def test_noise_adds_up_to_15_percent_of_the_irrelevant_images_one_time_in_ten() -> None:
    rng = np.random.default_rng(0)
    relevance = [0] * 40
    relevance[7] = 1
    draws = [with_noise(relevance, rng) for _ in range(4000)]
    noisy = [d for d in draws if d != [7]]
    assert all(7 in d and d == sorted(d) for d in draws)
    assert 0.08 < len(noisy) / len(draws) < 0.12
    assert max(len(d) - 1 for d in noisy) == int(NOISE_FRACTION * 39)  # 5 of 39
    assert min(len(d) - 1 for d in noisy) == 1
    assert with_noise([1, 1], rng) == [0, 1]  # nothing irrelevant to add


def test_caption_slots_sum_their_objects_words_or_say_nothing() -> None:
    words = torch.eye(6)  # 5 categories, "nothing" last
    present = torch.tensor([[True, False, True, False, False]])  # categories 0 and 2; slots of 2: {0, 2, 4} and {1, 3}
    targets = slot_targets(present, words, 2)
    assert torch.equal(targets[0, 0], words[0] + words[2]) and torch.equal(targets[0, 1], words[5])
    assert caption_alignment(targets, present, words).item() == 0.0
    assert caption_alignment(targets.flip(1), present, words).item() > 0.5


def test_qformer_attention_is_torch_multihead_attention_with_its_parameters() -> None:
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    torch.manual_seed(0)
    attention = Attention(16, 4)
    assert list(attention.state_dict()) == list(reference.state_dict())  # checkpoints keep their layout
    assert all(
        torch.equal(a, b) for a, b in zip(attention.state_dict().values(), reference.state_dict().values(), strict=True)
    )  # and their initialisation
    queries, context = torch.randn(5, 3, 16, requires_grad=True), torch.randn(5, 7, 16)
    ignored = torch.zeros(5, 7, dtype=torch.bool)
    ignored[1, 4:] = ignored[3, 6:] = True
    for mask in (None, ignored):
        ours, theirs = (
            attention(queries, context, mask),
            reference(queries, context, context, key_padding_mask=mask, need_weights=False)[0],
        )
        assert torch.allclose(ours, theirs, atol=1e-6)
        (ours_grad,) = torch.autograd.grad(ours.pow(2).sum(), queries)
        (theirs_grad,) = torch.autograd.grad(theirs.pow(2).sum(), queries)
        assert torch.allclose(ours_grad, theirs_grad, atol=1e-5)


def test_an_unpadded_question_scores_as_one_with_an_all_true_mask() -> None:
    torch.manual_seed(0)
    retriever = Retriever(width=16, tokens=2, max_question=6, layers=2, heads=2).eval()
    images, words = torch.randn(4, 2, 16), torch.randn(1, 5, 16)
    with torch.no_grad():
        assert torch.allclose(retriever(images, words), retriever(images, words, torch.ones(1, 5, dtype=torch.bool)), atol=1e-5)


@pytest.mark.parametrize("compression", ["image", "query"])
def test_chunked_scoring_equals_unchunked(compression: str) -> None:
    torch.manual_seed(0)
    chunked, whole = (
        Mirage(MirageConfig(compression=compression, chunk=64)).eval(),
        Mirage(MirageConfig(compression=compression, chunk=10_000)).eval(),
    )
    whole.load_state_dict(chunked.state_dict())
    features, question = torch.randn(300, 64, 96), [5, 6, 7]
    with torch.no_grad():
        tokens = chunked.compress(features, question)
        assert torch.allclose(tokens, whole.compress(features, question), atol=1e-5)
        assert torch.allclose(chunked.relevance(tokens, question), whole.relevance(tokens, question), atol=1e-5)


@pytest.mark.parametrize("compression", ["image", "query"])
def test_batched_compression_equals_per_sample(compression: str) -> None:
    torch.manual_seed(0)
    model = Mirage(MirageConfig(compression=compression, chunk=16)).eval()
    features, counts, questions = torch.randn(40, 64, 96), [3, 30, 7], [[5, 6, 7], [8, 9], [10, 11, 12, 13, 14]]
    with torch.no_grad():
        batched = model.compress_samples(features, counts, questions).split(counts)
        for tokens, rows, question in zip(batched, features.split(counts), questions, strict=True):
            assert torch.allclose(tokens, model.compress(rows, question), atol=1e-5)
    if compression == "query":  # each image read its own sample's question
        assert not torch.allclose(batched[0], model.compress(features[:3], questions[1]), atol=1e-3)


def refs(catalog: Catalog, count: int) -> list[ImageRef]:
    return [ImageRef(int(i), catalog.root / p, f"sha-{i}", 0) for i, p in zip(catalog.image_ids[:count], catalog.paths[:count])]


def test_feature_store_computes_each_image_once_and_keeps_it_on_disk(small_catalog: Catalog, tmp_path: Path) -> None:
    calls = []

    def compute(images: list[ImageRef]) -> torch.Tensor:
        calls.append(len(images))
        return torch.tensor([[float(image.image_id)] for image in images])

    images = refs(small_catalog, 6)
    store = FeatureStore(tmp_path / "store", compute)
    first = store.of(images[:4])
    both = store.of([images[5], images[0], images[5], images[4]])
    assert calls == [4, 2] and store.computed == 6
    assert both[:, 0].tolist() == [images[i].image_id for i in (5, 0, 5, 4)]
    assert torch.equal(both[1], first[0]) and torch.equal(both[0], both[2])
    reopened = FeatureStore(tmp_path / "store", compute)
    assert torch.equal(reopened.of(images), store.of(images)) and reopened.computed == 0 and calls == [4, 2]


def test_training_losses_fall_and_the_recall_curve_is_kept(runs: Path) -> None:
    curves = json.loads((runs / "mirage" / "curve.json").read_text())
    assert set(curves) >= {"captions", "cotrain", "lm", "retriever", "recall@1", "recall_step"}
    for phase in ("captions", "cotrain"):
        curve = curves[phase]
        assert np.mean(curve[-3:]) < np.mean(curve[:3]), phase
    assert len(curves["recall@1"]) == len(curves["recall_step"]) >= 2
    assert all(0 <= r <= 1 for r in curves["recall@1"])
    assert json.loads((runs / "mirage-query" / "config.json").read_text())["config"]["compression"] == "query"


def test_save_then_load_gives_identical_outputs(runs: Path, tmp_path: Path) -> None:
    model = Mirage.from_pretrained(runs / "mirage")
    model.save_pretrained(tmp_path / "copy")
    copy = Mirage.from_pretrained(tmp_path / "copy")
    torch.manual_seed(1)
    features, question = torch.randn(20, 64, 96), [5, 6, 7]
    with torch.no_grad():
        assert torch.equal(model.relevance(model.compress(features), question), copy.relevance(copy.compress(features), question))


@pytest.mark.parametrize("name", ["mirage", "mirage-query"])
def test_eval_reports_the_kept_images_and_needle_recall_and_the_cache_keeps_them(
    runs: Path, small_catalog: Catalog, tmp_path: Path, name: str
) -> None:
    questions = list(qs.build_question_set(small_catalog, "single", (1, 30), 4, 0, progress=False))
    questions += list(qs.build_question_set(small_catalog, "multi", (30,), 2, 0, progress=False))
    cache = ResponseCache(tmp_path / "cache.sqlite")
    spec = f"mirage:{runs / name}?store={tmp_path / 'store'}"
    first = evaluate(spec, questions, cache, RunOptions())
    assert (first["status"] == "ok").all()
    for question, row in zip(questions, first.itertuples(), strict=True):
        kept = [int(i) for i in row.kept_ids.split()]
        assert set(kept) <= set(question["image_ids"]) and 1 <= len(kept) <= (1 if question["mode"] == "single" else 3)
        found = len(set(kept) & set(question["needle_ids"]))
        assert row.needle_recall == found / len(question["needle_ids"]) and row.needle_precision == found / len(kept)
    again = evaluate(spec, questions, cache, RunOptions())
    assert again["cached"].all() and list(again["kept_ids"]) == list(first["kept_ids"])
    stored = MirageBackend(str(runs / name), store=str(tmp_path / "store")).store
    assert len(stored.rows) == len({i for q in questions for i in q["image_ids"]})  # each distinct image once, on disk


def test_a_stale_checkpoint_names_the_training_command_of_its_own_mode() -> None:
    assert Mirage.training_name({"compression": "query"}) == "mirage-query"
    assert Mirage.training_name({"compression": "image"}) == "mirage"


def test_the_token_budget_per_image_is_read_from_the_backends_themselves(runs: Path) -> None:
    specs = {"mirage": f"mirage:{runs / 'mirage'}", "not here": None, "always-yes": "always-yes"}
    assert image_tokens(specs) == {"mirage": MirageConfig().queries}  # always-yes reads no image
