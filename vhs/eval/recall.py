"""Needle recall@k of the retrievers among a chapter's models, on the same haystacks, loaded from the same
backend specs that answer (MIRAGE's retriever given the question; the CLIP-style one given the anchor's
name or, `?query=question`, the whole question)."""

from collections.abc import Iterable

import pandas as pd
import torch
from tqdm import tqdm

from vhs.errors import VhsError
from vhs.eval.runner import HaystackImages
from vhs.metrics import mean_interval
from vhs.models.base import Retriever
from vhs.models.registry import load_backend

RECALL_COLUMNS = ("retriever", "mode", "size", "k", "recall", "questions", "ci_low", "ci_high")


def load_retrievers(specs: dict[str, str]) -> dict[str, Retriever]:
    """Label -> the backend of each spec; a spec whose backend does not rank images is a VhsError."""
    retrievers = {}
    for label, spec in specs.items():
        backend = load_backend(spec)
        if not isinstance(backend, Retriever):
            raise VhsError(f"{label} ({spec}) does not rank a haystack's images; needle recall needs mirage or clip-retrieve")
        retrievers[label] = backend
    return retrievers


def needle_recall(
    retrievers: dict[str, Retriever], questions: Iterable[dict], images: HaystackImages, ks: tuple[int, ...] = (1, 3)
) -> pd.DataFrame:
    """One row per (retriever, mode, size, k): mean needle recall@k (needles among the top k / needles)
    over the questions with its 95% interval (`vhs.metrics.mean_interval`), and how many questions."""
    if not retrievers:
        return pd.DataFrame(columns=list(RECALL_COLUMNS))
    rows = []
    for question in tqdm(list(questions), desc="needle recall", unit="q"):
        request = images.request(question)
        needles = {i for i, image in enumerate(question["image_ids"]) if image in set(question["needle_ids"])}
        for name, retriever in retrievers.items():
            order = torch.as_tensor(retriever.relevance(request)).argsort(descending=True).tolist()
            rows += [
                {
                    "retriever": name,
                    "mode": question["mode"],
                    "size": question["size"],
                    "k": k,
                    "recall": len(needles & set(order[:k])) / len(needles),
                }
                for k in ks
            ]
    groups = pd.DataFrame(rows).groupby(["retriever", "mode", "size", "k"], sort=True)["recall"]
    table = groups.agg(recall="mean", questions="count").reset_index()
    intervals = [mean_interval(values) for _, values in groups]
    table[["ci_low", "ci_high"]] = pd.DataFrame(intervals, columns=["ci_low", "ci_high"])
    return table
