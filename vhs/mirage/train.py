"""Training MIRAGE on generated multi-image data from the training split (`vhs train mirage`).

Samples are VHs questions built by the benchmark's own builder from training images: single-needle
questions over 1-30 images (size 1 is a plain single-image question, larger sizes add distractor
images) and multi-needle ones with 2-3 needles; each carries its 0/1 relevance list (1 for a needle).
Three stages, as the official code's four with its last two merged:
1. captions (2/5 of the steps, batches of 128 images): Q-Former + projector learn to carry an image's caption: token
   k holds the sum of the word embeddings of the objects of categories k, k+K, k+2K, ... that the
   image shows, or "nothing" (`caption_alignment`), so the reader LM finds an object's name in them
   as it finds it in a caption;
2. retriever (1/5): the retriever alone, BCE with positive weight 5 on every image of a sample;
3. co-training (the rest): retriever BCE + the LM's answer loss over the relevant images + the caption
   loss, everything after the encoder trainable; in the last third of this stage, with probability
   0.1 a sample's LM input also gets up to 15% of its irrelevant images (`with_noise`).
"""

import numpy as np
import torch
import torch.nn.functional as F

from vhs.data.catalog import PRESENT, Catalog
from vhs.data.profiles import SynthSplit
from vhs.mirage.model import Mirage, MirageConfig
from vhs.synth_models.caption_lm import SynthCaptionLM
from vhs.synth_models.clip import pad
from vhs.synth_models.data import load_pixels, train_dir, training_catalog
from vhs.synth_models.features import patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.training_questions import training_questions

SIZES = (1, 2, 3, 5, 10, 20, 30)
POSITIVE_WEIGHT = 5.0
NOISE_PROBABILITY, NOISE_FRACTION = 0.1, 0.15
HELDOUT = SynthSplit(name="heldout", images=1_000, seed=2)  # recall during training is measured here
BATCH = 16
CAPTION_LR = 1e-2


def relevance_loss(logits: torch.Tensor, relevant: torch.Tensor) -> torch.Tensor:
    """BCE with the positive class weighted 5x: a missed needle costs five times a false alarm."""
    return F.binary_cross_entropy_with_logits(logits, relevant.float(), pos_weight=torch.tensor(POSITIVE_WEIGHT))


def with_noise(relevance: list[int], rng: np.random.Generator) -> list[int]:
    """The haystack positions the LM sees: the relevant ones and, with probability 0.1, between 1 and
    15% (at least 1) of the irrelevant ones too, in haystack order."""
    kept = [i for i, r in enumerate(relevance) if r]
    irrelevant = [i for i, r in enumerate(relevance) if not r]
    if irrelevant and rng.random() < NOISE_PROBABILITY:
        count = int(rng.integers(1, max(1, int(NOISE_FRACTION * len(irrelevant))) + 1))
        kept += rng.choice(irrelevant, count, replace=False).tolist()
    return sorted(kept)


def caption_alignment(tokens: torch.Tensor, present: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between each image's K tokens (B, K, D) and its caption in slots:
    category c belongs to slot c mod K, and a slot's target is the sum of the word embeddings (`words`,
    (C+1, D), "nothing" last) of its categories that the image shows (`present`, (B, C)), or "nothing"
    if it shows none of them. A fixed slot per category is what a 2-layer Q-Former learned in our
    budget; a set loss (each object matched to a free token, DETR-style) recovered a third of the
    objects after 400 steps (measured)."""
    return (tokens - slot_targets(present, words, tokens.shape[1])).pow(2).sum(-1).mean()


def slot_targets(present: torch.Tensor, words: torch.Tensor, slots: int) -> torch.Tensor:
    """(B, C) presence -> (B, K, D) slot targets (see `caption_alignment`)."""
    categories = present.shape[1]
    group = F.one_hot(torch.arange(categories) % slots, slots).float()  # (C, K)
    sums = torch.einsum("bc,ck,cd->bkd", present.float(), group, words[:categories])
    empty = (present.float() @ group) == 0  # (B, K)
    return torch.where(empty.unsqueeze(-1), words[-1], sums)


def train_mirage(reader: SynthCaptionLM, catalog: Catalog, steps: int, seed: int, compression: str = "image", lr: float = 1e-3) -> tuple[Mirage, dict[str, list[float]]]:
    """Train MIRAGE on the reader's encoder and LM (synth-caption's); return it and its curves:
    total loss per stage, LM and retriever losses per co-training step, and needle recall@1 of the
    retriever on held-out haystacks of 20 images (a split of its own) at 10 points of training."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    config = MirageConfig(width=reader.config.width, lm_width=reader.config.lm_width, layers=reader.config.layers, heads=reader.config.heads, compression=compression)
    model = Mirage(config)
    model.image_encoder.load_state_dict(reader.captioner.image_encoder.state_dict())
    model.image_encoder.requires_grad_(False)
    model.lm.load_state_dict(reader.lm.state_dict())
    features = patch_features(model.image_encoder, load_pixels(catalog))
    present = torch.from_numpy(catalog.state == PRESENT)
    vocabulary = torch.tensor([model.tokenizer.ids[name] for name in [*catalog.category_names, "nothing"]])
    samples = training_questions(catalog, SIZES, steps * BATCH // (2 * len(SIZES)) + 2, seed)
    heldout = Heldout.build(model, seed)
    generator = torch.Generator().manual_seed(seed)
    curves: dict[str, list[float]] = {"lm": [], "retriever": [], "recall@1": [], "recall_step": []}
    model.train()

    def alignment(tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return caption_alignment(tokens, present[rows], model.lm.words(vocabulary).detach())

    def captions_at(step: int) -> torch.Tensor:
        rows = torch.randint(len(features), (128,), generator=generator)
        return alignment(model.compress(features[rows]), rows)

    first, second = 2 * steps // 5, steps // 5  # captions, retriever; co-training gets the rest
    last = steps - first - second
    checkpoints = set(np.linspace(0, second + last - 1, 10).round().astype(int).tolist())

    def batch(index: int) -> tuple[list[dict], list[torch.Tensor], list[list[int]], list[torch.Tensor], list[list[int]]]:
        chosen = [samples[(index * BATCH + i) % len(samples)] for i in range(BATCH)]
        rows = [torch.from_numpy(catalog.rows_of(q["image_ids"])) for q in chosen]
        questions = [model.question_ids(q["question"]) for q in chosen]
        tokens = [model.compress(features[r], ids) for r, ids in zip(rows, questions, strict=True)]
        return chosen, rows, questions, tokens, [[int(i in q["needle_ids"]) for i in q["image_ids"]] for q in chosen]

    def retrieval(questions: list[list[int]], tokens: list[torch.Tensor], relevance: list[list[int]], step: int) -> torch.Tensor:
        counts = torch.tensor([len(t) for t in tokens])
        words, real = model.lm.words(pad(questions)), pad(questions) != 0
        logits = model.retriever(torch.cat(tokens), words.repeat_interleave(counts, dim=0), real.repeat_interleave(counts, dim=0))
        loss = relevance_loss(logits, torch.tensor([r for rel in relevance for r in rel]))
        curves["retriever"].append(round(loss.item(), 5))
        if step in checkpoints:
            curves["recall@1"].append(heldout.recall(model))
            curves["recall_step"].append(first + step)
            model.train()
        return loss

    def retriever_at(step: int) -> torch.Tensor:
        with torch.no_grad():  # the compressor is frozen in this stage
            _, _, questions, tokens, relevance = batch(step)
        return retrieval(questions, tokens, relevance, step)

    def cotrain_at(step: int) -> torch.Tensor:
        chosen, rows, questions, tokens, relevance = batch(second + step)
        retriever = retrieval(questions, tokens, relevance, second + step)
        noisy = step >= 2 * last // 3
        kept = [with_noise(rel, rng) if noisy else [i for i, r in enumerate(rel) if r] for rel in relevance]
        answer_logits = model.answer_logits([t[k] for t, k in zip(tokens, kept, strict=True)], questions)
        lm = F.cross_entropy(answer_logits, torch.tensor(model.tokenizer.answers(chosen)))
        curves["lm"].append(round(lm.item(), 5))
        return lm + retriever + alignment(torch.cat(tokens), torch.cat(rows))

    trainable = [p for name, p in model.named_parameters() if not name.startswith("image_encoder")]
    curves["captions"] = fit([*model.qformer.parameters(), *model.projector.parameters()], first, CAPTION_LR, "train mirage: captions", captions_at)
    curves["retrieval"] = fit(model.retriever.parameters(), second, 3e-3, "train mirage: retriever", retriever_at)
    curves["cotrain"] = fit(trainable, last, lr, "train mirage: co-training", cotrain_at)
    return model.eval(), curves


class Heldout:
    """Single-needle haystacks of 20 images from a split of their own, for the recall curve."""

    def __init__(self, features: torch.Tensor, questions: list[dict], rows: list[np.ndarray]) -> None:
        self.features, self.questions, self.rows = features, questions, rows

    @classmethod
    def build(cls, model: Mirage, seed: int, count: int = 64) -> "Heldout":
        catalog = training_catalog(train_dir().parent / HELDOUT.name, HELDOUT)
        features = patch_features(model.image_encoder, load_pixels(catalog), progress=False)
        questions = training_questions(catalog, (20,), count, seed, multi=False)
        return cls(features, questions, [catalog.rows_of(q["image_ids"]) for q in questions])

    @torch.no_grad()
    def recall(self, model: Mirage) -> float:
        """Fraction of questions whose needle is the retriever's top image."""
        model.eval()
        hits = 0
        for question, rows in zip(self.questions, self.rows, strict=True):
            ids = model.question_ids(question["question"])
            scores = model.relevance(model.compress(self.features[torch.from_numpy(rows)], ids), ids)
            hits += question["image_ids"][int(scores.argmax())] in question["needle_ids"]
        return round(hits / len(self.questions), 4)
