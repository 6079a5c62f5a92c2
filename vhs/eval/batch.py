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
from dataclasses import dataclass, replace
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
    label, endpoint = backend.label(), backend.endpoint()
    by_key: dict[str, list[Pending]] = {}
    for item in pending:
        by_key.setdefault(item.key, []).append(item)
    waiting = {batch_id: _Waiting(*found) for batch_id, found in cache.open_batches(endpoint, list(by_key)).items()}
    resumed = {key for batch in waiting.values() for key in batch.keys}
    if waiting:
        tqdm.write(f"{label}: resuming {len(waiting)} submitted batch(es) with {len(resumed):,} requests", file=sys.stderr)
    fresh = [key for key in by_key if key not in resumed]
    sending = []
    for key in fresh:
        if not budget.reserve(by_key[key][0].worst_usd):
            break
        sending.append(key)
    for key in fresh[len(sending) :]:
        for item in by_key[key]:
            rows[item.index] = unanswered_row(item.question, label, "not_run", budget.reason())
    for keys in _chunks(backend, by_key, sending):
        requests = [(key, by_key[key][0].request) for key in keys]
        batch_id = _calling(backend.submit_batch, requests, retry, f"{label}: submitting a batch")
        cache.record_batch(batch_id, endpoint, keys)
        waiting[batch_id] = _Waiting(time.time(), keys)
        tqdm.write(f"{label}: submitted batch {batch_id} with {len(keys):,} requests", file=sys.stderr)
    mine = set(sending)
    try:
        _wait(backend, cache, waiting, by_key, rows, budget, mine, retry, poll_seconds)
    except KeyboardInterrupt:
        tqdm.write(f"{label}: {len(waiting)} batch(es) run on at the provider; the same command resumes polling", file=sys.stderr)
        raise


def _wait(
    backend: ApiBackend,
    cache: ResponseCache,
    waiting: dict[str, "_Waiting"],
    by_key: dict[str, list[Pending]],
    rows: list[dict | None],
    budget: Budget,
    mine: set[str],
    retry: RetryPolicy,
    poll_seconds: float,
) -> None:
    """Poll every waiting batch until it ends, then record it; the bar counts the requests finished."""
    label, endpoint = backend.label(), backend.endpoint()
    with tqdm(total=sum(len(b.keys) for b in waiting.values()), desc=f"{label} batch", unit="q") as bar:
        while waiting:
            for batch_id, batch in list(waiting.items()):
                progress = _calling(backend.poll_batch, batch_id, retry, f"{label}: polling batch {batch_id}")
                bar.update(max(0, min(progress.finished, len(batch.keys)) - batch.finished))
                batch.finished = max(batch.finished, min(progress.finished, len(batch.keys)))
                bar.set_postfix_str(progress.state)
                if progress.ended:
                    outcome = _calling(backend.batch_results, batch_id, retry, f"{label}: reading batch {batch_id}")
                    _record(backend, cache, batch, by_key, outcome, rows, budget, mine, f"batch {batch_id} ({progress.state})")
                    cache.end_batch(batch_id, endpoint)
                    bar.update(len(batch.keys) - batch.finished)
                    del waiting[batch_id]
            if waiting:
                time.sleep(poll_seconds)


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


def _calling(method: Callable[[A], T], argument: A, retry: RetryPolicy, doing: str) -> T:
    """`method(argument)`, one batch API call, with the run's retries; a failure is one line saying that the same
    command resumes."""
    try:
        return call_with_retries(lambda: method(argument), retry)
    except BackendError as exc:
        raise VhsError(f"{doing} failed ({exc}); the same command resumes from the batches already submitted") from None


def _record(
    backend: ApiBackend,
    cache: ResponseCache,
    batch: _Waiting,
    by_key: dict[str, list[Pending]],
    outcome: dict[str, Reply | BackendError],
    rows: list[dict | None],
    budget: Budget,
    mine: set[str],
    name: str,
) -> None:
    """Cache an ended batch's answers and write the rows of every question it was to answer."""
    latency = time.time() - batch.submitted  # seconds from submission until the answer could be read
    identity, label = backend.identity(), backend.label()
    for key in batch.keys:
        items = by_key.get(key)
        if not items:  # answered meanwhile, or no longer asked for by this run
            continue
        result = outcome.get(key)
        if isinstance(result, Reply):
            reply = replace(result, images_sent=len(items[0].request.images))
            cache.put(key, identity, reply, latency)
            if key in mine:
                budget.settle(items[0].worst_usd, reply.cost_usd)
            new = [result_row(item.question, label, "ok", reply, latency) for item in items]
        else:
            if key in mine:
                budget.release(items[0].worst_usd)
            if isinstance(result, OverLimitError):
                new = [result_row(item.question, label, f"not_answerable:{result.kind}") for item in items]
            else:
                why = str(result) if result is not None else f"{name} ended without answering it"
                new = [unanswered_row(item.question, label, "error", why) for item in items]
        for item, row in zip(items, new):
            rows[item.index] = row
