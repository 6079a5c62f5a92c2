"""Backends for harness tests. Loadable by Python path: `--model tests.fake_backends.CountingBackend?...`."""

import os
import time

from vhs.models.base import Backend
from vhs.protocol import AuthError, Limits, MissingKeyError, OverLimitError, Reply, Request, TransientError


class CountingBackend(Backend):
    """Answers `text`, sleeping `delay` seconds; appends each call's qid to `log` (flushed and synced)."""

    name = "counting"

    def __init__(self, model_id: str = "", log: str = "", delay: str = "0", text: str = "Yes", api_key: str = "") -> None:
        super().__init__(model_id, text=text, api_key=api_key)
        self.log, self.delay, self.text = log, float(delay), text
        self.calls: list[str] = []

    def generate(self, request: Request) -> Reply:
        self.calls.append(request.qid)
        if self.log:
            with open(self.log, "a") as handle:
                handle.write(request.qid + "\n")
                handle.flush()
                os.fsync(handle.fileno())
        time.sleep(self.delay)
        return Reply(text=self.text, input_tokens=10 * len(request.images), output_tokens=1, images_sent=len(request.images))


class ScriptedBackend(Backend):
    """Raises the scripted errors in turn on successive calls, then answers "No"."""

    name = "scripted"

    def __init__(self, script: list[Exception]) -> None:
        super().__init__("scripted")
        self.script = list(script)
        self.calls = 0

    def generate(self, request: Request) -> Reply:
        self.calls += 1
        if self.script:
            raise self.script.pop(0)
        return Reply(text="No")


class LimitedBackend(CountingBackend):
    """Takes at most 3 images and 250 context tokens (100 per image); a 'sent anyway' mode raises a 413."""

    name = "limited"
    limits = Limits(max_images=3, context_tokens=250)

    def prompt_tokens(self, request: Request) -> int:
        return 100 * len(request.images)


class RejectingBackend(CountingBackend):
    """Declares no limits, but the provider answers 413 for more than one image."""

    name = "rejecting"

    def generate(self, request: Request) -> Reply:
        if len(request.images) > 1:
            raise OverLimitError("payload", "413 Request Entity Too Large")
        return super().generate(request)


class NoKeyBackend(Backend):
    """A backend whose key is not configured."""

    name = "nokey"

    def __init__(self, model_id: str = "") -> None:
        raise MissingKeyError("FAKE_API_KEY is not set")


class UnauthorizedBackend(CountingBackend):
    """Every call is a 401."""

    name = "unauthorized"

    def generate(self, request: Request) -> Reply:
        raise AuthError("401 invalid api key")


__all__ = [
    "CountingBackend",
    "LimitedBackend",
    "NoKeyBackend",
    "RejectingBackend",
    "ScriptedBackend",
    "TransientError",
    "UnauthorizedBackend",
]
