"""Run a backend over a question set (`vhs eval`): limits, cache, bounded concurrency, retries.

For each question, in order: place the needle if asked (`position`), build the request, report an
over-limit haystack as not answerable without sending it, serve a cached answer, or call the
backend (in a thread pool of `concurrency` workers; in batches of `batch_size` for local backends)
with retries, committing each answer to the cache as it arrives. The result is a tidy table, one
row per question, with `status` exactly one of STATUSES.
"""

import functools
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from vhs.data.catalog import Catalog
from vhs.data.profiles import load_profile_catalog
from vhs.data.questions import PROMPT_PREFIX
from vhs.errors import VhsError
from vhs.eval.cache import ResponseCache, cache_key
from vhs.eval.parse import lenient_correct, parse_yes_no
from vhs.eval.retry import RetryPolicy, call_with_retries
from vhs.metrics import DEPTH_BUCKETS
from vhs.models.base import AuthError, Backend, BackendError, BatchedBackend, ImageRef, MissingKeyError, OverLimitError, Reply, Request
from vhs.models.registry import load_backend

STATUSES = ("ok", "unparsed", "not_answerable:context", "not_answerable:payload", "error", "not_run")
NO_KEY = "no API key"
RESULT_COLUMNS = (
    "qid", "mode", "quantifier", "size", "num_needles", "position", "model", "answer", "raw", "parsed",
    "correct", "correct_lenient", "status", "latency", "input_tokens", "output_tokens", "images_sent", "cached",
    "kept_ids", "needle_recall", "needle_precision",
)


@dataclass(frozen=True)
class RunOptions:
    """How to run: parallel calls, how many questions, where to put the needle, retries, a cap on calls."""

    concurrency: int = 4
    limit: int | None = None
    position: str | None = None
    retry: RetryPolicy = RetryPolicy()
    data: Path | None = None
    max_requests: int | None = None


def place_needle(question: dict, position: str) -> dict:
    """A copy of a single-needle question with its needle moved to `position` (first|middle|last|K)."""
    if question["num_needles"] != 1:
        raise VhsError("--position applies to single-needle questions only")
    size = question["size"]
    index = {"first": 0, "middle": size // 2, "last": size - 1}.get(position)
    if index is None:
        try:
            index = int(position)
        except ValueError:
            raise VhsError(f"--position must be first, middle, last or an index, got {position!r}") from None
    if not 0 <= index < size:
        raise VhsError(f"--position {index} is outside a haystack of {size} images")
    needle = question["needle_ids"][0]
    others = [i for i in question["image_ids"] if i != needle]
    return {**question, "image_ids": others[:index] + [needle] + others[index:], "needle_positions": [index]}


def at_each_position(questions: Iterable[dict], buckets: int = DEPTH_BUCKETS) -> list[dict]:
    """Each single-needle question once per needle position, as the paper's position study: at
    every index of a haystack of up to `buckets` images, in the middle of each tenth (bucket) of a
    larger one. The copies share their `qid`, so intervals cluster by question."""
    def indices(size: int) -> range | list[int]:
        return range(size) if size <= buckets else [(2 * b + 1) * size // (2 * buckets) for b in range(buckets)]

    return [place_needle(q, str(index)) for q in questions for index in indices(q["size"])]


@functools.lru_cache(maxsize=4)
def _shared_catalog(dataset: str, data: Path | None) -> Catalog:
    """A data set's catalog, loaded once per process (a second run in a notebook reuses it)."""
    return load_profile_catalog(dataset, data)


class HaystackImages:
    """Questions -> Requests: image ids resolved through each data set's catalog and the cache's remembered hashes.

    One ImageRef per distinct image is made and shared by every haystack that holds it, so a run
    of 1,000 haystacks of 10,000 images holds pointers, not 10 million records.
    """

    def __init__(self, cache: ResponseCache, data: Path | None) -> None:
        self._cache = cache
        self._data = data
        self._catalogs: dict[str, Catalog] = {}
        self._refs: dict[tuple[str, int], ImageRef] = {}

    def _ref(self, dataset: str, catalog: Catalog, row: int, question: dict) -> ImageRef:
        path = catalog.root / catalog.paths[row]
        if not path.is_file():
            raise VhsError(f"image file missing: {path} (image {catalog.image_ids[row]} of {question['qid']})")
        digest, size = self._cache.image_hash(path)
        ref = self._refs[(dataset, row)] = ImageRef(int(catalog.image_ids[row]), path, digest, size)
        return ref

    def request(self, question: dict) -> Request:
        """The request a backend receives for a question: the paper's prompt and the images in order."""
        return Request(PROMPT_PREFIX + question["question"], question, self.refs(question))

    def refs(self, question: dict) -> tuple[ImageRef, ...]:
        """The question's images, in presentation order."""
        dataset = question.get("dataset", "synth")
        if dataset not in self._catalogs:
            self._catalogs[dataset] = _shared_catalog(dataset, self._data)
        catalog = self._catalogs[dataset]
        known = self._refs
        return tuple(
            known.get((dataset, row)) or self._ref(dataset, catalog, row, question)
            for row in catalog.rows_of(question["image_ids"]).tolist()
        )


def over_limit(backend: Backend, request: Request) -> str | None:
    """The not-answerable status a request earns before any call, or None if it fits."""
    limits = backend.limits
    if limits.max_images is not None and len(request.images) > limits.max_images:
        return "not_answerable:payload"
    if limits.max_request_bytes is not None and backend.request_bytes(request) > limits.max_request_bytes:
        return "not_answerable:payload"
    if limits.context_tokens is not None:
        needed = backend.prompt_tokens(request)
        if needed is not None and needed > limits.context_tokens:
            return "not_answerable:context"
    return None


def _row(question: dict, label: str, status: str, reply: Reply | None = None, latency: float | None = None, cached: bool = False) -> dict:
    raw = reply.text if reply else None
    parsed = parse_yes_no(raw) if status == "ok" else None
    if status == "ok" and parsed is None:
        status = "unparsed"
    scored = status in ("ok", "unparsed")
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
        "latency": latency,
        "input_tokens": reply.input_tokens if reply else None,
        "output_tokens": reply.output_tokens if reply else None,
        "images_sent": reply.images_sent if reply else 0,
        "cached": cached,
        **_retrieval(question, reply),
    }


def _retrieval(question: dict, reply: Reply | None) -> dict:
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


def _as_table(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    for column in ("input_tokens", "output_tokens"):
        table[column] = table[column].astype("Int64")
    for column in ("latency", "needle_recall", "needle_precision"):
        table[column] = table[column].astype("float64")
    return table


def not_run_table(questions: Iterable[dict], label: str, reason: str) -> pd.DataFrame:
    """Every question marked `not_run` (no key, no weights), the reason in `raw`: the model appears, nothing is dropped."""
    return _as_table([{**_row(q, label, "not_run"), "raw": reason} for q in questions])


def run_backend(backend: Backend, questions: Iterable[dict], cache: ResponseCache, options: RunOptions = RunOptions()) -> pd.DataFrame:
    """Answer every question with `backend`; return the results table (one row per question)."""
    questions = list(questions)[: options.limit]
    if options.position is not None:
        questions = [place_needle(q, options.position) for q in questions]
    label = backend.label()
    identity = backend.identity()
    images = HaystackImages(cache, options.data)
    rows: list[dict | None] = [None] * len(questions)
    pending: list[tuple[int, Request, str]] = []
    for index, question in enumerate(tqdm(questions, desc="prepare", unit="q", leave=False)):
        request = images.request(question)
        status = over_limit(backend, request)
        if status:
            rows[index] = _row(question, label, status)
            continue
        key = cache_key(identity, request.prompt, [i.sha256 for i in request.images])
        hit = cache.get(key)
        if hit:
            rows[index] = _row(question, label, "ok", hit[0], hit[1], cached=True)
        else:
            pending.append((index, request, key))

    if options.max_requests is not None and len(pending) > options.max_requests:
        for index, request, _ in pending[options.max_requests :]:
            rows[index] = {**_row(request.question, label, "not_run"), "raw": f"not sent: --max-requests {options.max_requests}"}
        pending = pending[: options.max_requests]
    if backend.paid and pending:
        images_to_send = sum(len(request.images) for _, request, _ in pending)
        tokens = sum(backend.prompt_tokens(request) or 0 for _, request, _ in pending)
        tqdm.write(f"{label}: about to send {len(pending):,} requests with {images_to_send:,} images, about {tokens:,} input tokens", file=sys.stderr)

    stop = threading.Event()  # set by the first 401/403 or missing key: no further request leaves

    def answer(unit: list[tuple[int, Request, str]]) -> list[tuple[int, dict]]:
        if stop.is_set():
            return []
        start = time.perf_counter()
        try:
            replies = call_with_retries(lambda: backend.generate_batch([r for _, r, _ in unit]), options.retry)
        except OverLimitError as exc:
            return [(i, _row(r.question, label, f"not_answerable:{exc.kind}")) for i, r, _ in unit]
        except (AuthError, MissingKeyError):
            stop.set()
            raise
        except BackendError as exc:  # a TransientError after the last attempt, or a refusal to answer
            return [(i, {**_row(r.question, label, "error"), "raw": str(exc)}) for i, r, _ in unit]
        if len(replies) != len(unit):
            raise RuntimeError(f"{label} returned {len(replies)} replies for {len(unit)} requests")
        latency = (time.perf_counter() - start) / len(unit)
        done = []
        for (i, request, key), reply in zip(unit, replies):
            cache.put(key, identity, reply, latency)
            done.append((i, _row(request.question, label, "ok", reply, latency)))
        return done

    batch = max(1, backend.batch_size)
    units = [pending[k : k + batch] for k in range(0, len(pending), batch)]
    workers = 1 if batch > 1 or isinstance(backend, BatchedBackend) else max(1, options.concurrency)  # local models: one at a time
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=len(pending), desc=label, unit="q") as bar:
        futures = [pool.submit(answer, unit) for unit in units]
        try:
            for future in as_completed(futures):
                finished = future.result()
                for index, row in finished:
                    rows[index] = row
                bar.update(len(finished))
        except AuthError as exc:
            for future in futures:
                future.cancel()
            raise VhsError(f"{label}: authentication failed ({exc}); check the API key") from None
        except MissingKeyError:
            for future in futures:
                future.cancel()
            return not_run_table(questions, label, NO_KEY)
    return _as_table(rows)


def evaluate(model: str, questions: Iterable[dict], cache: ResponseCache, options: RunOptions = RunOptions()) -> pd.DataFrame:
    """Load the backend a spec names and run it; a missing API key gives a `not_run` table, not an error."""
    questions = list(questions)
    try:
        backend = load_backend(model)
    except MissingKeyError:
        return not_run_table(questions[: options.limit], model, NO_KEY)
    return run_backend(backend, questions, cache, options)


def evaluate_models(
    specs: dict[str, str | None], questions: Iterable[dict], cache: ResponseCache, options: RunOptions = RunOptions(), unavailable: str = "not built for this profile yet"
) -> pd.DataFrame:
    """Every model of `specs` (label -> spec) over the same questions, rows labelled by the label;
    a spec of None (a model the profile cannot run) is marked `not_run` with the reason `unavailable`."""
    questions = list(questions)
    tables = [
        evaluate(spec, questions, cache, options).assign(model=label) if spec is not None else not_run_table(questions[: options.limit], label, unavailable)
        for label, spec in specs.items()
    ]
    return pd.concat(tables, ignore_index=True)


def write_results(table: pd.DataFrame, out: Path) -> None:
    """Write a results table as Parquet, atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    table.to_parquet(partial, index=False)
    partial.replace(out)
