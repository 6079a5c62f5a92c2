"""Retries with exponential backoff and jitter, honouring a provider's Retry-After up to the same cap.

This is the only retry policy in vhs: backends set their SDKs' own retries to zero. A wait is cut
short when the run is stopped (Ctrl-C, or the circuit breaker below), and then no further attempt is
made.
"""

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vhs.errors import VhsError
from vhs.protocol import TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """At most `max_attempts` calls; waits base * 2**k seconds (jittered to 50-100%), never more than `max_delay`."""

    max_attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise VhsError(f"--max-attempts must be at least 1, got {self.max_attempts}")

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based).

        A provider's Retry-After is waited for, plus up to 20% so that parallel workers do not return
        together, but never beyond `max_delay`: a provider asking for minutes gets the cap.
        """
        if retry_after is not None:
            return min(self.max_delay, max(0.0, retry_after) * rng.uniform(1.0, 1.2))
        return min(self.max_delay, self.base_delay * 2 ** (attempt - 1)) * rng.uniform(0.5, 1.0)


class Stopped(Exception):
    """The run was stopped while this call waited to retry: no further attempt was made."""


def call_with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    stop: threading.Event | None = None,
) -> T:
    """Run `call`, retrying TransientError per `policy`; the last TransientError propagates, saying how often
    it was tried and whether the provider asked to wait longer than the cap. With `stop`, waits end when it is
    set, and `Stopped` is raised instead of trying again."""
    rng = rng or random.Random()
    asked = 0.0
    for attempt in range(1, policy.max_attempts + 1):
        if stop is not None and stop.is_set():
            raise Stopped()
        try:
            return call()
        except TransientError as exc:
            if exc.retry_after is not None:
                asked = max(asked, exc.retry_after)
            if attempt == policy.max_attempts:
                note = (
                    f" (the provider asked to wait {asked:g} s; waits are capped at {policy.max_delay:g} s)"
                    if asked > policy.max_delay
                    else ""
                )
                tries = "" if attempt == 1 else f" (after {attempt} attempts)"
                raise TransientError(f"{exc.message}{tries}{note}", exc.retry_after, exc.unreachable) from exc
            wait = policy.delay(attempt, exc.retry_after, rng)
            if stop is None:
                sleep(wait)
            elif stop.wait(wait):
                raise Stopped() from None
    raise AssertionError("unreachable")
