"""Run a backend over a question set (`vhs eval`): limits, cache, bounded concurrency, retries, a dollar cap.

For each question, in order: place the needle if asked (`position`), build the request, report an
over-limit haystack as not answerable without sending it, serve a cached answer, or call the
backend (in a thread pool of `concurrency` workers; in batches of `batch_size` for local backends;
through the provider's batch API with `batch`, see `vhs.eval.batch`) with retries, committing each
answer to the cache as it arrives, and sending nothing that could pass `max_usd`. The result is a
tidy table, one row per question, with `status` exactly one of `vhs.eval.rows.STATUSES`.
"""

import functools
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from vhs.cache import Claims, ResponseCache, cache_key
from vhs.data.catalog import Catalog
from vhs.data.kinds import kind_of
from vhs.data.profiles import load_profile_catalog
from vhs.data.questions import PROMPT_PREFIX
from vhs.errors import VhsError
from vhs.eval.batch import batch_backend, run_batches
from vhs.eval.budget import Budget
from vhs.eval.retry import RetryPolicy, Stopped, call_with_retries
from vhs.eval.rows import NO_KEY, Pending, not_run_table, result_row, results_table, unanswered_row
from vhs.metrics import DEPTH_BUCKETS
from vhs.models.base import Backend, BatchedBackend
from vhs.models.prices import format_usd
from vhs.models.registry import load_backend, public_spec
from vhs.paths import atomic_path, data_root
from vhs.protocol import AuthError, BackendError, ImageRef, MissingKeyError, OverLimitError, Reply, Request, TransientError


@dataclass(frozen=True)
class RunOptions:
    """How to run: parallel calls, how many questions, where to put the needle, retries, a cap on calls and one
    on dollars, after how many consecutive attempts without an answer from the endpoint to stop, and whether to
    go through the provider's batch API (polled every `poll_seconds`)."""

    concurrency: int = 4
    limit: int | None = None
    position: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    data: Path | None = None
    max_requests: int | None = None
    max_unreachable: int = 10
    max_usd: float | None = None
    batch: bool = False
    poll_seconds: float = 30.0

    def __post_init__(self) -> None:
        for flag, value, least in (
            ("--concurrency", self.concurrency, 1),
            ("--limit", self.limit, 1),
            ("--max-requests", self.max_requests, 0),
        ):
            if value is not None and value < least:
                raise VhsError(f"{flag} must be at least {least}, got {value}")
        if self.max_unreachable < 1:
            raise VhsError(f"max_unreachable must be at least 1, got {self.max_unreachable}")
        if self.max_usd is not None and not self.max_usd >= 0:
            raise VhsError(f"--max-usd must be at least 0, got {self.max_usd}")
        if not self.poll_seconds > 0:
            raise VhsError(f"poll_seconds must be positive, got {self.poll_seconds}")


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
    return {**question, "image_ids": [*others[:index], needle, *others[index:]], "needle_positions": [index]}


def at_each_position(questions: Iterable[dict], buckets: int = DEPTH_BUCKETS) -> list[dict]:
    """Each single-needle question once per needle position, as the paper's position study: at
    every index of a haystack of up to `buckets` images, in the middle of each tenth (bucket) of a
    larger one. The copies share their `qid`, so intervals cluster by question."""

    def indices(size: int) -> range | list[int]:
        return range(size) if size <= buckets else [(2 * b + 1) * size // (2 * buckets) for b in range(buckets)]

    return [place_needle(q, str(index)) for q in questions for index in indices(q["size"])]


@functools.lru_cache(maxsize=4)
def _shared_catalog(dataset: str, data: Path | None, root: Path) -> Catalog:
    """A data set's catalog, loaded once per process (a second run in a notebook reuses it). `root` ($VHS_DATA,
    where a catalog without `data` lives) is part of the key only: a process that moves it loads the new place."""
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

    def request(self, question: dict) -> Request:
        """The request a backend receives for a question: the paper's prompt and the images in order."""
        kind = kind_of(question)
        return Request(
            PROMPT_PREFIX + question["question"],
            self.refs(question),
            question=question["question"],
            kind=kind.name,
            anchor=question.get("anchor", ""),
            target=question.get("target", ""),
            qid=question["qid"],
            dataset=question.get("dataset", "synth"),
        )

    def refs(self, question: dict) -> tuple[ImageRef, ...]:
        """The question's images, in presentation order."""
        dataset = question.get("dataset", "synth")
        if dataset not in self._catalogs:
            self._catalogs[dataset] = _shared_catalog(dataset, self._data, data_root().resolve())
        catalog = self._catalogs[dataset]
        rows = catalog.rows_of(question["image_ids"]).tolist()
        new = [row for row in dict.fromkeys(rows) if (dataset, row) not in self._refs]
        paths = [catalog.root / catalog.paths[row] for row in new]
        try:
            hashes = self._cache.image_hashes(paths)
        except FileNotFoundError as exc:
            raise VhsError(f"image file missing: {exc.filename} (an image of {question['qid']})") from None
        for row, path, (digest, size) in zip(new, paths, hashes):
            self._refs[(dataset, row)] = ImageRef(int(catalog.image_ids[row]), path, digest, size)
        return tuple(self._refs[(dataset, row)] for row in rows)


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


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped a run: nothing queued was sent, the calls in flight finished and were cached,
    and no results were written. `abandoned` counts calls still in flight after a second interrupt."""

    def __init__(self, label: str, cached: int, total: int, abandoned: int = 0) -> None:
        super().__init__(label, cached, total, abandoned)
        self.label, self.cached, self.total, self.abandoned = label, cached, total, abandoned

    def __str__(self) -> str:
        left = f"; left {self.abandoned} calls in flight" if self.abandoned else ""
        cached = f"{self.cached} of {self.total} answers are cached"
        return f"{self.label}: interrupted: {cached}{left}; the same command resumes from them"


class _Halt:
    """Why the run stopped sending (the first reason wins); waits between retries end when it is set."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reason = ""
        self._lock = threading.Lock()

    def set(self, reason: str) -> None:
        with self._lock:
            if not self.event.is_set():
                self.reason = reason
                self.event.set()

    def __bool__(self) -> bool:
        return self.event.is_set()


class CircuitBreaker:
    """Halts the run after `limit` consecutive attempts that got no answer at all (a dead or unreachable endpoint)."""

    def __init__(self, limit: int, halt: _Halt) -> None:
        self.limit, self.halt = limit, halt
        self.tripped = False
        self._streak = 0
        self._lock = threading.Lock()

    def record(self, error: BaseException | None) -> None:
        """Count an attempt: `error` is what it raised, None if it answered."""
        with self._lock:
            unreachable = isinstance(error, TransientError) and error.unreachable
            self._streak = self._streak + 1 if unreachable else 0
            if self._streak >= self.limit:
                self.tripped = True
                self.halt.set(f"not sent: the endpoint did not answer {self.limit} attempts in a row ({error})")


def one_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    message = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__


def run_backend(
    backend: Backend, questions: Iterable[dict], cache: ResponseCache, options: RunOptions = RunOptions()
) -> pd.DataFrame:
    """Answer every question with `backend`; return the results table (one row per question).

    A bad image or a failing call is an `error` row, never cached, and the run goes on. Ctrl-C
    (KeyboardInterrupt) sends nothing more, lets the calls in flight finish into the cache and raises
    `RunInterrupted`; a second one raises it at once. With `max_usd`, a paid backend whose price is unknown
    is a VhsError before anything is sent.
    """
    batching = batch_backend(backend) if options.batch else None
    questions = list(questions)[: options.limit]
    if options.position is not None:
        questions = [place_needle(q, options.position) for q in questions]
    label = backend.label()
    identity = backend.identity()
    images = HaystackImages(cache, options.data)
    backend.read_data_from(options.data)
    rows: list[dict | None] = [None] * len(questions)
    pending: list[Pending] = []
    for index, question in enumerate(tqdm(questions, desc="prepare", unit="q", leave=False)):
        request = images.request(question)
        try:
            status = over_limit(backend, request)
        except BackendError as exc:  # a corrupt image, found while measuring the request
            rows[index] = unanswered_row(question, label, "error", str(exc))
            continue
        if status:
            rows[index] = result_row(question, label, status)
            continue
        key = cache_key(identity, request.prompt, [i.sha256 for i in request.images])
        hit = cache.get(key)
        if hit:
            rows[index] = result_row(question, label, "ok", hit[0], hit[1], cached=True)
        else:
            pending.append(Pending(index, question, request, key))

    if options.max_requests is not None and len(pending) > options.max_requests:
        for item in pending[options.max_requests :]:
            rows[item.index] = unanswered_row(item.question, label, "not_run", f"not sent: --max-requests {options.max_requests}")
        pending = pending[: options.max_requests]
    if backend.paid and pending:
        pending = _priced(backend, pending, options)
    budget = Budget(options.max_usd)
    try:
        if pending and batching:
            try:
                run_batches(batching, cache, pending, rows, budget, options.retry, options.poll_seconds)
            except KeyboardInterrupt:
                answered = sum(row is not None and row["status"] == "ok" for row in rows)
                raise RunInterrupted(label, answered, len(rows)) from None
        elif pending:
            _Dispatch(backend, cache, options, rows, len(questions) - len(pending), budget).run(pending)
    except MissingKeyError:
        return not_run_table(questions, label, NO_KEY)
    return results_table(rows)


def _priced(backend: Backend, pending: list[Pending], options: RunOptions) -> list[Pending]:
    """The pending questions with the most each can cost; says what the run will send and what it may cost."""
    dollars = [backend.dollars(item.request, options.batch) for item in pending]
    known = None not in dollars
    if options.max_usd is not None and not known:
        raise VhsError(
            f"--max-usd: the price of {backend.label()} is unknown (vhs.models.prices lists none), so it cannot be capped"
        )
    images_to_send = sum(len(item.request.images) for item in pending)
    tokens = sum(backend.prompt_tokens(item.request) or 0 for item in pending)
    price = "price unknown"
    if known:
        given, most = (sum(d[k] for d in dollars if d) for k in (0, 1))
        rate = "the batch rate" if options.batch else "list price"
        price = f"about {format_usd(given)} of input and at most {format_usd(most)} of output at {rate}"
    tqdm.write(
        f"{backend.label()}: about to send {len(pending):,} requests with {images_to_send:,} images,"
        f" about {tokens:,} input tokens; {price}",
        file=sys.stderr,
    )
    return [replace(item, worst_usd=sum(d)) if d else item for item, d in zip(pending, dollars)]


class _Dispatch:
    """Sends the pending questions: claims each key, calls with retries in a thread pool, commits each answer.

    Keys another process is answering are left for last, then waited for. On Ctrl-C nothing queued is
    sent and the calls in flight finish; a question never sent is `not_run` with the reason.
    """

    POLL_SECONDS = 0.2

    def __init__(
        self, backend: Backend, cache: ResponseCache, options: RunOptions, rows: list[dict | None], cached: int, budget: Budget
    ) -> None:
        self.backend, self.cache, self.options, self.rows, self.budget = backend, cache, options, rows, budget
        self.label, self.identity = backend.label(), backend.identity()
        self.halt = _Halt()
        self.breaker = CircuitBreaker(options.max_unreachable, self.halt)
        self.cached = cached  # answers in the cache for this run's questions: hits so far, and each one committed
        self._count = threading.Lock()
        self.claims: Claims

    def run(self, pending: list[Pending]) -> None:
        """Answer `pending` into `rows`; questions left unsent become `not_run` rows."""
        batch = max(1, self.backend.batch_size)
        local = batch > 1 or isinstance(self.backend, BatchedBackend)
        workers = 1 if local else self.options.concurrency  # local models: one at a time
        with Claims(self.cache) as claims, tqdm(total=len(pending), desc=self.label, unit="q") as bar:
            self.claims = claims
            deferred = self._pool([pending[k : k + batch] for k in range(0, len(pending), batch)], workers, False, bar)
            if deferred and not self.halt:
                self._pool([[item] for item in deferred], workers, True, bar)
        if self.breaker.tripped:
            tqdm.write(f"{self.label}: stopped, {self.halt.reason.removeprefix('not sent: ')}", file=sys.stderr)
        for item in pending:
            if self.rows[item.index] is None:
                self.rows[item.index] = unanswered_row(item.question, self.label, "not_run", self.halt.reason or "not sent")

    def _pool(self, units: list[list[Pending]], workers: int, wait: bool, bar: tqdm) -> list[Pending]:
        """Run the units in `workers` threads; return the items another process holds (when not `wait`ing)."""
        pool = ThreadPoolExecutor(max_workers=workers)
        futures = [pool.submit(self._answer, unit, wait) for unit in units]
        deferred: list[Pending] = []
        try:
            for future in as_completed(futures):
                done, held = future.result()
                for index, row in done:
                    self.rows[index] = row
                deferred += held
                bar.update(len(done))
        except KeyboardInterrupt:
            self.halt.set("not sent: interrupted")
            for future in futures:
                future.cancel()
            flying = sum(f.running() for f in futures)
            tqdm.write(
                f"{self.label}: stopping; waiting for {flying} calls in flight (interrupt again to leave them)", file=sys.stderr
            )
            try:
                wait_for(futures)  # the calls in flight finish, and their answers are committed
            except KeyboardInterrupt:
                raise RunInterrupted(self.label, self.cached, len(self.rows), sum(not f.done() for f in futures)) from None
            raise RunInterrupted(self.label, self.cached, len(self.rows)) from None
        except AuthError as exc:
            raise VhsError(f"{self.label}: authentication failed ({exc}); check the API key") from None
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return deferred

    def _claim(self, unit: list[Pending], wait: bool) -> tuple[list[Pending], list[tuple[int, dict]], list[Pending]]:
        """Split a unit into (ours to call, answered meanwhile by another process, held by another process)."""
        mine, done, held = [], [], []
        for item in unit:
            state = self.claims.take(item.key)
            while state == "held" and wait and not self.halt.event.wait(self.POLL_SECONDS):
                state = self.claims.take(item.key)
            hit = self.cache.get(item.key) if state == "answered" else None
            if hit:
                done.append((item.index, result_row(item.question, self.label, "ok", hit[0], hit[1], cached=True)))
            elif state == "claimed":
                mine.append(item)
            else:
                held.append(item)
        return mine, done, held

    def _attempt(self, requests: list[Request]) -> list[Reply]:
        try:
            replies = self.backend.generate_batch(requests)
        except BaseException as exc:
            self.breaker.record(exc)
            raise
        self.breaker.record(None)
        return replies

    def _answer(self, unit: list[Pending], wait: bool) -> tuple[list[tuple[int, dict]], list[Pending]]:
        """Claim, call with retries, commit: the unit's finished rows, and the items left to another process."""
        if self.halt:
            return [], []
        mine, done, held = self._claim(unit, wait)
        if not mine:
            return done, held
        label = self.label
        worst = sum(item.worst_usd for item in mine)
        if not self.budget.reserve(worst):
            self.halt.set(self.budget.reason())  # this call, and every one after it, stays unsent
            for item in mine:
                self.claims.release(item.key)
            return done, held
        replies: list[Reply] = []
        start = time.perf_counter()
        try:
            replies = call_with_retries(
                lambda: self._attempt([i.request for i in mine]), self.options.retry, stop=self.halt.event
            )
            if len(replies) != len(mine):
                raise BackendError(f"{label} returned {len(replies)} replies for {len(mine)} requests")
            latency = (time.perf_counter() - start) / len(mine)
            for item, reply in zip(mine, replies):
                self.cache.put(item.key, self.identity, reply, latency)
                with self._count:
                    self.cached += reply.is_final
                done.append((item.index, result_row(item.question, label, "ok", reply, latency)))
        except Stopped:
            pass
        except OverLimitError as exc:
            done += [(i.index, result_row(i.question, label, f"not_answerable:{exc.kind}")) for i in mine]
        except AuthError:
            self.halt.set("not sent: authentication failed")  # here, so that no other worker starts a call
            raise
        except MissingKeyError:
            self.halt.set(NO_KEY)
            raise
        except BackendError as exc:  # a TransientError after the last attempt, or a refusal to answer
            done += [(i.index, unanswered_row(i.question, label, "error", str(exc))) for i in mine]
        except Exception as exc:
            done += [(i.index, unanswered_row(i.question, label, "error", one_line(exc))) for i in mine]
        finally:
            for item in mine:
                self.claims.release(item.key)
            costs = [reply.cost_usd for reply in replies]
            if not replies:
                self.budget.release(worst)
            else:
                self.budget.settle(worst, None if None in costs else sum(c for c in costs if c is not None))
        return done, held


def evaluate(model: str, questions: Iterable[dict], cache: ResponseCache, options: RunOptions = RunOptions()) -> pd.DataFrame:
    """Load the backend a spec names and run it; a missing API key gives a `not_run` table, not an error."""
    questions = list(questions)
    try:
        backend = load_backend(model)
    except MissingKeyError:
        return not_run_table(questions[: options.limit], public_spec(model), NO_KEY)
    return run_backend(backend, questions, cache, options)


@dataclass(frozen=True)
class Unavailable:
    """A model a profile cannot run, and why; falsy, so that `if spec` reads "this model can run"."""

    reason: str

    def __bool__(self) -> bool:
        return False


def evaluate_models(
    specs: dict[str, str | Unavailable],
    questions: Iterable[dict],
    cache: ResponseCache,
    options: RunOptions = RunOptions(),
) -> pd.DataFrame:
    """Every model of `specs` (label -> spec) over the same questions, rows labelled by the label (a spec used as a
    label loses its secrets); an `Unavailable` one is marked `not_run` with its reason."""
    questions = list(questions)
    tables = [
        not_run_table(questions[: options.limit], public_spec(label), spec.reason)
        if isinstance(spec, Unavailable)
        else evaluate(spec, questions, cache, options).assign(model=public_spec(label))
        for label, spec in specs.items()
    ]
    return pd.concat(tables, ignore_index=True)


def write_results(table: pd.DataFrame, out: Path) -> None:
    """Write a results table as Parquet, atomically."""
    with atomic_path(Path(out)) as partial:
        table.to_parquet(partial, index=False)
