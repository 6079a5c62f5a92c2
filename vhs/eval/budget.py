"""A run's dollar cap (`vhs eval --max-usd X`): a call is sent only while the dollars already spent, plus the
most that every call in flight can cost (its own included), stay within the cap.

"The most a call can cost" is its estimated input and every token of its output cap at list price
(`Backend.dollars`), so by the estimate the cap is never passed; what a call did cost replaces its
reservation when it answers, and a call that failed gives its reservation back.
"""

import threading


class Budget:
    """Dollars spent and reserved against a cap (None: no cap, every reservation is granted)."""

    def __init__(self, cap: float | None) -> None:
        self.cap = cap
        self.spent = 0.0
        self.reserved = 0.0
        self._lock = threading.Lock()

    def reserve(self, worst: float) -> bool:
        """Reserve a call's worst case; False (nothing reserved) if it would pass the cap."""
        with self._lock:
            if self.cap is not None and self.spent + self.reserved + worst > self.cap + 1e-12:
                return False
            self.reserved += worst
            return True

    def settle(self, worst: float, cost: float | None) -> None:
        """A reserved call answered: it cost `cost` (its worst case when the provider reported no usage)."""
        with self._lock:
            self.reserved -= worst
            self.spent += worst if cost is None else cost

    def release(self, worst: float) -> None:
        """A reserved call failed without an answer: nothing was billed."""
        with self._lock:
            self.reserved -= worst

    def reason(self) -> str:
        """Why a call was not sent, for its row."""
        return f"not sent: --max-usd {self.cap:g} would be passed (${self.spent:.4f} spent)"
