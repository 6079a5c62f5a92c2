"""The results table of a run: one row per question, its columns, and the status each row has.

`result_row` turns a question and its reply (or none) into a row; `unanswered_row` is a row with no reply and the reason;
`results_table` gives the table its column types. The runner and the batch path build every row through these.
"""

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from vhs.eval.parse import lenient_correct, parse_yes_no
from vhs.metrics import SCORED
from vhs.protocol import Reply, Request

STATUSES = ("ok", "unparsed", "truncated", "not_answerable:context", "not_answerable:payload", "error", "not_run")
NO_KEY = "no API key"
RESULT_COLUMNS = (
    "qid",
    "mode",
    "quantifier",
    "size",
    "num_needles",
    "position",
    "model",
    "answer",
    "raw",
    "parsed",
    "correct",
    "correct_lenient",
    "status",
    "stop_reason",
    "latency",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "reasoning",
    "images_sent",
    "cost_usd",
    "cached",
    "kept_ids",
    "needle_recall",
    "needle_precision",
)


def result_row(
    question: dict, label: str, status: str, reply: Reply | None = None, latency: float | None = None, cached: bool = False
) -> dict:
    """The row of a question with `status` (and its reply, when one came): an `ok` reply is parsed and scored,
    or marked `unparsed` or `truncated`."""
    raw = reply.text if reply else None
    parsed = parse_yes_no(raw) if status == "ok" else None
    if status == "ok" and parsed is None:
        # the cap spent before a word was said (a reasoning model's thinking): not the model's answer, not scored;
        # a reply that talked past the cap without a yes or no stays unparsed, wrong, as the paper's strict rule
        status = "truncated" if reply is not None and reply.cut_by_cap and not reply.is_final else "unparsed"
    scored = status in SCORED
    return {
        "qid": question["qid"],
        "mode": question["mode"],
        "quantifier": question.get("quantifier"),
        "size": question["size"],
        "num_needles": question["num_needles"],
        "position": question["needle_positions"][0],
        "model": label,
        "answer": question["answer"],
        "raw": raw,
        "parsed": parsed,
        "correct": scored and parsed == question["answer"],
        "correct_lenient": scored and lenient_correct(raw, question["answer"]),
        "status": status,
        "stop_reason": reply.stop_reason if reply else None,
        "latency": latency,
        "input_tokens": reply.input_tokens if reply else None,
        "output_tokens": reply.output_tokens if reply else None,
        "reasoning_tokens": reply.reasoning_tokens if reply else None,
        "reasoning": reply.reasoning if reply else None,
        "images_sent": reply.images_sent if reply else 0,
        "cost_usd": reply.cost_usd if reply else None,
        "cached": cached,
        **retrieval_columns(question, reply),
    }


def unanswered_row(question: dict, label: str, status: str, why: str) -> dict:
    """The row of a question that got no reply (`error`, `not_run`), with the reason in `raw`."""
    return {**result_row(question, label, status), "raw": why}


def retrieval_columns(question: dict, reply: Reply | None) -> dict:
    """The kept image ids and the needles' recall and precision among them, for a retrieving backend."""
    if reply is None or reply.kept is None:
        return {"kept_ids": None, "needle_recall": None, "needle_precision": None}
    kept = [question["image_ids"][i] for i in reply.kept]
    found = len(set(kept) & set(question["needle_ids"]))
    return {
        "kept_ids": " ".join(map(str, kept)),
        "needle_recall": found / len(question["needle_ids"]),
        "needle_precision": found / len(kept) if kept else 0.0,
    }


def results_table(rows: list[dict]) -> pd.DataFrame:
    """The rows as the results table: every column of RESULT_COLUMNS, counts as nullable integers."""
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    for column in ("input_tokens", "output_tokens", "reasoning_tokens"):
        table[column] = table[column].astype("Int64")
    for column in ("latency", "cost_usd", "needle_recall", "needle_precision"):
        table[column] = table[column].astype("float64")
    return table


def not_run_table(questions: Iterable[dict], label: str, reason: str) -> pd.DataFrame:
    """Every question marked `not_run` (no key, no weights), the reason in `raw`: the model appears, nothing is dropped."""
    return results_table([unanswered_row(q, label, "not_run", reason) for q in questions])


@dataclass(frozen=True)
class Pending:
    """A question to send: its row in the results, its record (for the row, never sent), its request, its cache key
    and the most its call can cost in dollars (0 for a free backend)."""

    index: int
    question: dict
    request: Request
    key: str
    worst_usd: float = 0.0
