"""Needle recall@k of retrievers on the same haystacks: MIRAGE's retriever (given the question) against
the CLIP-style one, given the question text as CLIP would be in practice, and given the bare anchor name."""

from collections.abc import Callable, Iterable

import pandas as pd
import torch
from tqdm import tqdm

from vhs.data.kinds import with_article
from vhs.eval.runner import HaystackImages
from vhs.models.clip_retrieve import ClipRanker
from vhs.models.mirage import MirageBackend
from vhs.protocol import Request

Scorer = Callable[[Request], torch.Tensor]  # one score per haystack image, higher = more relevant


def mirage_scorer(backend: MirageBackend) -> Scorer:
    """MIRAGE's retriever logits for the question."""

    def score(request: Request) -> torch.Tensor:
        with torch.no_grad():
            return backend.model.relevance(backend.haystack_tokens(request), backend.model.question_ids(request.question))

    return score


def clip_scorers(ranker: ClipRanker) -> dict[str, Scorer]:
    """The CLIP-style retriever given the question's text, and given only the anchor's name."""

    def question(request: Request) -> torch.Tensor:
        return ranker.scores(request.images, request.question)

    def anchor(request: Request) -> torch.Tensor:
        return ranker.scores(request.images, with_article(request.anchor))

    return {"clip (question)": question, "clip (anchor name)": anchor}


def needle_recall(
    scorers: dict[str, Scorer], questions: Iterable[dict], images: HaystackImages, ks: tuple[int, ...] = (1, 3)
) -> pd.DataFrame:
    """One row per (retriever, mode, size, k): mean needle recall@k (needles among the top k / needles)
    over the questions, and how many questions."""
    rows = []
    for question in tqdm(list(questions), desc="needle recall", unit="q"):
        request = images.request(question)
        needles = {i for i, image in enumerate(question["image_ids"]) if image in set(question["needle_ids"])}
        for name, scorer in scorers.items():
            order = scorer(request).argsort(descending=True).tolist()
            for k in ks:
                rows.append(
                    {
                        "retriever": name,
                        "mode": question["mode"],
                        "size": question["size"],
                        "k": k,
                        "recall": len(needles & set(order[:k])) / len(needles),
                    }
                )
    table = pd.DataFrame(rows)
    return (
        table.groupby(["retriever", "mode", "size", "k"], sort=True)["recall"].agg(recall="mean", questions="count").reset_index()
    )
