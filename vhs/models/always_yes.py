"""`always-yes`: answers "Yes" to everything. On balanced sets it scores exactly 50%: the floor."""

from vhs.models.base import Backend
from vhs.protocol import Reply, Request


class AlwaysYesBackend(Backend):
    """Replies "Yes." without looking."""

    name = "always-yes"

    def generate(self, request: Request) -> Reply:
        """Always "Yes."."""
        return Reply(text="Yes.")
