"""Training MIRAGE on generated multi-image data from the training split (`vhs train mirage`).

Samples are VHs questions built by the benchmark's own builder from training images: single-needle
questions over 1-30 images (size 1 is a plain single-image question, larger sizes add distractor
images) and multi-needle ones with 2-3 needles; each carries its 0/1 relevance list (1 for a needle).
Three stages, as the official code's four with its last two merged:
1. captions (2/5 of the steps, batches of 128 images): Q-Former + projector learn to carry an image's caption: token
   k holds the sum of the word embeddings of the objects of categories k, k+K, k+2K, ... that the
   image shows, or "nothing" (`caption_alignment`), so the reader LM finds an object's name in them
   as it finds it in a caption;
2. retriever (1/5): the retriever alone, BCE with positive weight 5 on every image of a sample and on
   4 hard negatives per sample (`hard_negative_pools`): training images without the anchor that the
   frozen captioner rates likeliest to show it, which random haystacks of at most 30 images hardly
   ever hold, but a 10,000-image haystack always does (co-training keeps them). The compressor is
   frozen here, so in image mode every training image is compressed once for the whole stage;
3. co-training (the rest): retriever BCE + the LM's answer loss over the relevant images + the caption
   loss, everything after the encoder trainable, the gradient's norm clipped at 1; in the last third of this stage, with
   probability 0.1 a sample's LM input also gets up to 15% of its irrelevant images (`with_noise`).
"""

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from vhs.data.catalog import ABSENT, PRESENT, Catalog
from vhs.data.kinds import with_article
from vhs.data.profiles import SynthSplit
from vhs.mirage.hub import HubMirage, HubMirageConfig
from vhs.mirage.model import Mirage, MirageConfig, MirageMechanisms
from vhs.parallel import current, rank_seed
from vhs.synth_models.caption_lm import SynthCaptionLM
from vhs.synth_models.clip import padded
from vhs.synth_models.data import train_dir, training_catalog
from vhs.synth_models.features import patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.llava import word_sums
from vhs.synth_models.training_questions import training_questions

SIZES = (1, 2, 3, 5, 10, 20, 30)
POSITIVE_WEIGHT = 5.0
NOISE_PROBABILITY, NOISE_FRACTION = 0.1, 0.15
HELDOUT = SynthSplit(name="heldout", images=1_000, seed=2)  # recall during training is measured here
BATCH = 16
STAGE_SHARES = (2, 1, 2)  # fifths of the steps: captions, retriever, co-training
CAPTION_LR = 1e-2
COTRAIN_MAX_GRAD_NORM = 1.0  # unclipped, co-training can diverge (its LM loss back to chance)
HARD_NEGATIVES, HARD_POOL = 4, 256  # per sample, from each category's 256 likeliest false alarms; 8 cost more, gained nothing


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


def hard_negative_pools(presence_logits: torch.Tensor, state: np.ndarray, size: int = HARD_POOL) -> list[torch.Tensor]:
    """Per category, the rows of the `size` images without it (ABSENT, not ambiguous) whose presence
    logit for it (`presence_logits`, (N, C)) is highest: the distractors likeliest to be mistaken for a needle."""
    pools = []
    for category in range(state.shape[1]):
        rows = torch.from_numpy(np.flatnonzero(state[:, category] == ABSENT))
        pools.append(rows[presence_logits[rows, category].argsort(descending=True)[:size]])
    return pools


def caption_alignment(tokens: torch.Tensor, present: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """Mean squared distance between each image's K tokens (B, K, D) and its caption in slots:
    category c belongs to slot c mod K, and a slot's target is the sum of the word embeddings (`words`,
    (C+1, D), "nothing" last) of its categories that the image shows (`present`, (B, C)), or "nothing"
    if it shows none of them. A fixed slot per category is what a 2-layer Q-Former learned in our
    budget; a set loss (each object matched to a free token, DETR-style) recovered far fewer objects."""
    return (tokens - slot_targets(present, words, tokens.shape[1])).pow(2).sum(-1).mean()


def slot_targets(present: torch.Tensor, words: torch.Tensor, slots: int) -> torch.Tensor:
    """(B, C) presence -> (B, K, D) slot targets (see `caption_alignment`)."""
    in_slot = (torch.arange(present.shape[1]) % slots == torch.arange(slots)[:, None]).float()  # (K, C)
    return word_sums(present.float().unsqueeze(1) * in_slot, words)


def train_mirage(
    reader: SynthCaptionLM, catalog: Catalog, steps: int, seed: int, compression: str = "image", lr: float = 1e-3
) -> tuple[Mirage, dict[str, list[float]]]:
    """Train the synth MIRAGE on the reader's encoder and LM (synth-caption's); return it and its curves
    (see `fit_mirage`), with needle recall@1 on held-out haystacks of 20 images (a split of its own)."""
    torch.manual_seed(seed)
    config = MirageConfig(
        width=reader.config.width,
        lm_width=reader.config.lm_width,
        layers=reader.config.layers,
        heads=reader.config.heads,
        compression=compression,
    )
    model = Mirage(config)
    model.image_encoder.load_state_dict(reader.captioner.image_encoder.state_dict())
    model.image_encoder.requires_grad_(False)
    model.lm.load_state_dict(reader.lm.state_dict())
    features = patch_features(model.image_encoder, catalog)
    present = torch.from_numpy(catalog.state == PRESENT)
    vocabulary = torch.tensor([model.tokenizer.ids[name] for name in [*catalog.category_names, "nothing"]])
    with torch.no_grad():
        hard = hard_negative_pools(reader.captioner.logits_from_features(features), catalog.state)

    def captions(tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return caption_alignment(tokens, present[rows], model.lm.words(vocabulary).detach())

    curves = fit_mirage(model, features, catalog, steps, seed, captions, hard, Heldout.build(model, seed), lr)
    return model.eval(), curves


CaptionLoss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (tokens (B, K, D), image rows (B,)) -> loss


def fit_mirage(
    model: MirageMechanisms,
    features: torch.Tensor,
    catalog: Catalog,
    steps: int,
    seed: int,
    caption_loss: CaptionLoss,
    hard: list[torch.Tensor] | None = None,
    heldout: "Heldout | None" = None,
    lr: float = 1e-3,
    caption_batch: int = 128,
) -> dict[str, list[float]]:
    """The three stages on `features` (one row per image of `catalog`), for either size of MIRAGE:
    total loss per stage, LM and retriever losses per step, and (with `heldout`) recall@1 at 10 points.

    `caption_loss` teaches the compressor to carry an image's objects; `hard` (per category, rows of
    images without it) adds HARD_NEGATIVES of them to each sample's retrieval loss. Everything with
    `requires_grad` trains in co-training (the frozen encoder, and a frozen hub LM, do not)."""
    ranks = current()  # under torchrun each rank trains on batches of its own (rank 0 alone: the usual ones)
    rng = np.random.default_rng(rank_seed(seed))
    anchor_column = {name: column for column, name in enumerate(catalog.category_names)}
    samples = training_questions(catalog, SIZES, steps * BATCH * ranks.world // (2 * len(SIZES)) + 2, seed)
    generator = torch.Generator().manual_seed(rank_seed(seed))
    curves: dict[str, list[float]] = {"lm": [], "retriever": [], "recall@1": [], "recall_step": []}
    model.train()

    def captions_at(step: int) -> torch.Tensor:
        rows = torch.randint(len(features), (caption_batch,), generator=generator)
        return caption_loss(model.compress(features[rows]), rows)

    first, second = (share * steps // sum(STAGE_SHARES) for share in STAGE_SHARES[:2])
    last = steps - first - second
    checkpoints = set(np.linspace(0, second + last - 1, 10).round().astype(int).tolist()) if heldout else set()

    def rows_of(question: dict) -> torch.Tensor:
        """The sample's haystack rows, then HARD_NEGATIVES rows from its anchor's pool (if any)."""
        rows = torch.from_numpy(catalog.rows_of(question["image_ids"]))
        if hard is None:
            return rows
        pool = hard[anchor_column[question["anchor"]]]
        return torch.cat([rows, pool[torch.from_numpy(rng.choice(len(pool), min(HARD_NEGATIVES, len(pool)), replace=False))]])

    def batch(
        index: int, compressed: torch.Tensor | None = None
    ) -> tuple[list[dict], list[torch.Tensor], list[list[int]], list[torch.Tensor], list[list[int]]]:
        """Samples, their image rows (haystack, then hard negatives), question ids, tokens and 0/1 relevance.
        The tokens are looked up in `compressed` (every image's, image mode with the compressor frozen) when given."""
        chosen = [samples[((index * ranks.world + ranks.rank) * BATCH + i) % len(samples)] for i in range(BATCH)]
        rows = [rows_of(q) for q in chosen]
        questions = [model.question_ids(q["question"]) for q in chosen]
        counts = [len(r) for r in rows]
        every = torch.cat(rows)
        tokens = list(
            (compressed[every] if compressed is not None else model.compress_samples(features[every], counts, questions)).split(
                counts
            )
        )
        relevance = [
            [int(i in q["needle_ids"]) for i in q["image_ids"]] + [0] * (len(r) - len(q["image_ids"]))
            for q, r in zip(chosen, rows, strict=True)
        ]
        return chosen, rows, questions, tokens, relevance

    def retrieval(questions: list[list[int]], tokens: list[torch.Tensor], relevance: list[list[int]], step: int) -> torch.Tensor:
        counts = torch.tensor([len(t) for t in tokens], device=model.device)
        ids, real = padded(questions)
        words, real = model.word_embeddings(ids), real.to(model.device)
        logits = model.retriever(torch.cat(tokens), words.repeat_interleave(counts, dim=0), real.repeat_interleave(counts, dim=0))
        loss = relevance_loss(logits, torch.tensor([r for rel in relevance for r in rel], device=model.device))
        curves["retriever"].append(round(loss.item(), 5))
        if step in checkpoints:
            curves["recall@1"].append(heldout.recall(model))
            curves["recall_step"].append(first + step)
            model.train()
        return loss

    def retriever_at(step: int, compressed: torch.Tensor | None) -> torch.Tensor:
        with torch.no_grad():  # the compressor is frozen in this stage
            _, _, questions, tokens, relevance = batch(step, compressed)
        return retrieval(questions, tokens, relevance, step)

    def cotrain_at(step: int) -> torch.Tensor:
        chosen, rows, questions, tokens, relevance = batch(second + step)
        retriever = retrieval(questions, tokens, relevance, second + step)
        noisy = step >= 2 * last // 3
        kept = [with_noise(rel, rng) if noisy else [i for i, r in enumerate(rel) if r] for rel in relevance]
        answer_logits = model.answer_logits([t[k] for t, k in zip(tokens, kept, strict=True)], questions)
        lm = F.cross_entropy(answer_logits, torch.tensor(model.tokenizer.answers(chosen), device=model.device))
        curves["lm"].append(round(lm.item(), 5))
        return lm + retriever + caption_loss(torch.cat(tokens), torch.cat(rows))

    trainable = [p for p in model.parameters() if p.requires_grad]
    curves["captions"] = fit(
        [*model.qformer.parameters(), *model.projector.parameters()], first, CAPTION_LR, "train mirage: captions", captions_at
    )
    with (
        torch.no_grad()
    ):  # image mode: the frozen compressor's tokens do not depend on the question, so each image is compressed once
        compressed = None if model.query_aware else model.compress(features)
    curves["retrieval"] = fit(
        model.retriever.parameters(), second, 3e-3, "train mirage: retriever", lambda step: retriever_at(step, compressed)
    )
    curves["cotrain"] = fit(trainable, last, lr, "train mirage: co-training", cotrain_at, max_grad_norm=COTRAIN_MAX_GRAD_NORM)
    return curves


class Heldout:
    """Single-needle haystacks of 20 images from a split of their own, for the recall curve."""

    def __init__(self, features: torch.Tensor, questions: list[dict], rows: list[np.ndarray]) -> None:
        self.features, self.questions, self.rows = features, questions, rows

    @classmethod
    def build(cls, model: Mirage, seed: int, count: int = 64) -> "Heldout":
        catalog = training_catalog(train_dir().parent / HELDOUT.name, HELDOUT)
        features = patch_features(model.image_encoder, catalog, progress=False)
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


def train_hub_mirage(
    catalog: Catalog,
    steps: int,
    seed: int,
    config: HubMirageConfig | None = None,
    device: str = "auto",
    dtype: str = "auto",
    images: int = 20_000,
) -> tuple[HubMirage, dict[str, list[float]]]:
    """Train the coco MIRAGE's Q-Former, projector and retriever (CLIP and the LM frozen) on the first
    `images` images of a training catalog (COCO train2017): their CLIP features are computed once and
    kept in memory, the compressor learns to caption ("a photo of a dog and a cup") through the frozen
    LM, then `fit_mirage`'s retriever and co-training stages run as for the synth model, without
    hard negatives (no captioner to mine them) or a held-out recall curve."""
    torch.manual_seed(seed)
    model = HubMirage(config or HubMirageConfig(), device, dtype)
    catalog = replace(catalog, image_ids=catalog.image_ids[:images], paths=catalog.paths[:images], state=catalog.state[:images])
    paths = [catalog.root / p for p in catalog.paths]
    features = torch.cat(
        [
            model.encode_paths(paths[s : s + 64])
            for s in tqdm(range(0, len(paths), 64), desc="encode training images", unit="batch")
        ]
    )
    names = catalog.category_names
    captions = [
        f"a photo of {' and '.join(with_article(names[c]) for c in np.flatnonzero(row == PRESENT)) or 'a scene'}."
        for row in catalog.state
    ]

    def caption_loss(tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return model.caption_loss(tokens, [captions[r] for r in rows.tolist()])

    curves = fit_mirage(model, features, catalog, steps, seed, caption_loss, caption_batch=32)
    return model.eval(), curves
