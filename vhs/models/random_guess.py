"""`random`: a seeded coin flip per question, the same whatever the order or concurrency of the run."""

import hashlib

from vhs.models.base import Backend
from vhs.protocol import Reply, Request


class RandomBackend(Backend):
    """Replies "Yes" or "No" from a hash of (seed, question id, image order)."""

    name = "random"

    def __init__(self, model_id: str = "", seed: str = "0") -> None:
        super().__init__(model_id, seed=int(seed))

    def label(self) -> str:
        """`random:seed=N`."""
        return f"random:seed={self.params['seed']}"

    def generate(self, request: Request) -> Reply:
        """Heads "Yes", tails "No"."""
        key = f"{self.params['seed']}|{request.qid}|{','.join(i.sha256 for i in request.images)}"
        return Reply(text="Yes" if hashlib.sha256(key.encode()).digest()[0] & 1 else "No")
