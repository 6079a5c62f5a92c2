"""`vhs eval --batch`: the pending questions through the provider's batch API, at half price, in hours.

The requests are exactly those of a direct run (the same cache keys), submitted in batches that fit the
provider's limits. Each batch's id and keys go into the cache database the moment it is accepted, so a
run killed while it waits resumes polling that batch instead of submitting again (only a kill between
the provider's acceptance and that write can submit twice). When a batch ends, every answer is cached
and becomes a row as a direct call's would; a request the provider failed, cancelled or let expire is an
`error` row, never cached, and a later run submits it again.
"""

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

from tqdm import tqdm

from vhs.cache import ResponseCache
from vhs.errors import VhsError
from vhs.eval.budget import Budget
from vhs.eval.retry import RetryPolicy, call_with_retries
from vhs.eval.rows import Pending, result_row, unanswered_row
from vhs.models.api_common import ApiBackend
from vhs.models.base import Backend
from vhs.protocol import BackendError, OverLimitError, Reply

A = TypeVar("A")
T = TypeVar("T")
_FILL = 0.9  # of a provider's per-batch byte limit: room for the JSON around each request


@dataclass
class _Waiting:
    """A submitted batch this run waits on: when it was submitted and the keys it answers."""

    submitted: float
    keys: list[str]
    finished: int = 0


def batch_backend(backend: Backend) -> ApiBackend:
    """`backend` if its provider has a batch API in vhs, else a VhsError (before anything is sent)."""
    if not (isinstance(backend, ApiBackend) and backend.batch_bytes):
        raise VhsError(f"--batch: {backend.label()} has no batch API in vhs (openai, anthropic and gemini have)")
    return backend


def run_batches(
    backend: ApiBackend,
    cache: ResponseCache,
    pending: list[Pending],
    rows: list[dict | None],
    budget: Budget,
    retry: RetryPolicy,
    poll_seconds: float,
) -> None:
    """Answer `pending` into `rows` through `backend`'s batch API, polling every `poll_seconds` (see the module
    docstring). Ctrl-C stops the waiting, not the batches: they run on at the provider."""
    by_key: dict[str, list[Pending]] = {}
    for item in pending:
        by_key.setdefault(item.key, []).append(item)
    _BatchRun(backend, cache, by_key, rows, budget, retry).run(poll_seconds)


@dataclass
class _BatchRun:
    """One `--batch` run: the questions pending under each cache key, the rows they fill, the budget, the retries;
    the keys this run submitted (`mine`: their reservations settle against the budget) and the batches it waits on."""

    backend: ApiBackend
    cache: ResponseCache
    by_key: dict[str, list[Pending]]
    rows: list[dict | None]
    budget: Budget
    retry: RetryPolicy
    mine: set[str] = field(default_factory=set)
    waiting: dict[str, _Waiting] = field(default_factory=dict)
    label: str = field(init=False)
    endpoint: str = field(init=False)

    def __post_init__(self) -> None:
        self.label, self.endpoint = self.backend.label(), self.backend.endpoint()

    def run(self, poll_seconds: float) -> None:
        """Resume the batches a killed run left, submit the rest within the budget, wait for all of them."""
        found = self.cache.open_batches(self.endpoint, list(self.by_key))
        self.waiting = {batch_id: _Waiting(*batch) for batch_id, batch in found.items()}
        resumed = {key for batch in self.waiting.values() for key in batch.keys}
        if self.waiting:
            _say(f"{self.label}: resuming {len(self.waiting)} submitted batch(es) with {len(resumed):,} requests")
        self.submit([key for key in self.by_key if key not in resumed])
        try:
            self.wait(poll_seconds)
        except KeyboardInterrupt:
            _say(f"{self.label}: {len(self.waiting)} batch(es) run on at the provider; the same command resumes polling")
            raise

    def submit(self, fresh: list[str]) -> None:
        """Submit the keys whose worst case fits the budget, in batches within the provider's limits; the rest are
        `not_run` rows."""
        sending: list[str] = []
        for key in fresh:
            if not self.budget.reserve(self.by_key[key][0].worst_usd):
                break
            sending.append(key)
        self.mine = set(sending)
        for key in fresh[len(sending) :]:
            for item in self.by_key[key]:
                self.rows[item.index] = unanswered_row(item.question, self.label, "not_run", self.budget.reason())
        for keys in _chunks(self.backend, self.by_key, sending):
            requests = [(key, self.by_key[key][0].request) for key in keys]
            batch_id = _calling(self.backend.submit_batch, requests, self.retry, f"{self.label}: submitting a batch")
            self.cache.record_batch(batch_id, self.endpoint, keys)
            self.waiting[batch_id] = _Waiting(time.time(), keys)
            _say(f"{self.label}: submitted batch {batch_id} with {len(keys):,} requests")

    def wait(self, poll_seconds: float) -> None:
        """Poll every waiting batch until it ends, then record it; the bar counts the requests finished."""
        with tqdm(total=sum(len(b.keys) for b in self.waiting.values()), desc=f"{self.label} batch", unit="q") as bar:
            while self.waiting:
                for batch_id, batch in list(self.waiting.items()):
                    progress = _calling(self.backend.poll_batch, batch_id, self.retry, f"{self.label}: polling batch {batch_id}")
                    finished = min(progress.finished, len(batch.keys))
                    if finished > batch.finished:
                        bar.update(finished - batch.finished)
                        batch.finished = finished
                    bar.set_postfix_str(progress.state)
                    if progress.ended:
                        doing = f"{self.label}: reading batch {batch_id}"
                        outcome = _calling(self.backend.batch_results, batch_id, self.retry, doing)
                        self.record(batch, outcome, f"batch {batch_id} ({progress.state})")
                        self.cache.end_batch(batch_id, self.endpoint)
                        bar.update(len(batch.keys) - batch.finished)
                        del self.waiting[batch_id]
                if self.waiting:
                    time.sleep(poll_seconds)

    def record(self, batch: _Waiting, outcome: dict[str, Reply | BackendError], name: str) -> None:
        """Cache an ended batch's answers and write the rows of every question it was to answer."""
        latency = time.time() - batch.submitted  # seconds from submission until the answer could be read
        identity = self.backend.identity()
        for key in batch.keys:
            items = self.by_key.get(key)
            if not items:  # answered meanwhile, or no longer asked for by this run
                continue
            result = outcome.get(key)
            if isinstance(result, Reply):
                reply = replace(result, images_sent=len(items[0].request.images))
                self.cache.put(key, identity, reply, latency)
                if key in self.mine:
                    self.budget.settle(items[0].worst_usd, reply.cost_usd)
                new = [result_row(item.question, self.label, "ok", reply, latency) for item in items]
            else:
                if key in self.mine:
                    self.budget.release(items[0].worst_usd)
                if isinstance(result, OverLimitError):
                    new = [result_row(item.question, self.label, f"not_answerable:{result.kind}") for item in items]
                else:
                    why = str(result) if result is not None else f"{name} ended without answering it"
                    new = [unanswered_row(item.question, self.label, "error", why) for item in items]
            for item, row in zip(items, new):
                self.rows[item.index] = row


def _chunks(backend: ApiBackend, by_key: dict[str, list[Pending]], keys: list[str]) -> list[list[str]]:
    """`keys` cut into batches within the provider's limits on requests and bytes per batch."""
    limit = int((backend.batch_bytes or 0) * _FILL)
    chunks: list[list[str]] = []
    size = 0
    for key in keys:
        request_bytes = backend.request_bytes(by_key[key][0].request)
        if not chunks or len(chunks[-1]) >= backend.batch_requests or size + request_bytes > limit:
            chunks.append([])
            size = 0
        chunks[-1].append(key)
        size += request_bytes
    return chunks


def _say(line: str) -> None:
    """One line on stderr, above the progress bar."""
    tqdm.write(line, file=sys.stderr)


def _calling(method: Callable[[A], T], argument: A, retry: RetryPolicy, doing: str) -> T:
    """`method(argument)`, one batch API call, with the run's retries; a failure is one line saying that the same
    command resumes."""
    try:
        return call_with_retries(lambda: method(argument), retry)
    except BackendError as exc:
        raise VhsError(f"{doing} failed ({exc}); the same command resumes from the batches already submitted") from None
