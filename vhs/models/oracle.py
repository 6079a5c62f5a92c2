"""`oracle`: answers from the annotations of the images it is given. Must score 100%: the ceiling.

It does what the question asks, with perfect perception: finds the images whose annotations show
the anchor, then checks them for the target by the question kind's rule (`vhs.data.kinds`). A request
carries no answer to read.
"""

import threading
from pathlib import Path

from vhs.data.catalog import PRESENT, Catalog
from vhs.data.kinds import KINDS
from vhs.data.profiles import load_profile_catalog
from vhs.models.base import Backend
from vhs.protocol import Reply, Request


class OracleBackend(Backend):
    """Perfect perception from the data set's annotations (`oracle?data=DIR` to pick the data)."""

    name = "oracle"

    def __init__(self, model_id: str = "", data: str = "") -> None:
        super().__init__(model_id)
        self._data = Path(data) if data else None
        self._catalogs: dict[str, Catalog] = {}
        self._loading = threading.Lock()  # the runner calls from several threads: load each catalog once

    def read_data_from(self, data: Path | None) -> None:
        """The run's data directory, unless the spec named one (`oracle?data=DIR`)."""
        with self._loading:
            if self._data is None and data is not None:
                self._data = Path(data)
                self._catalogs.clear()

    def _catalog(self, dataset: str) -> Catalog:
        with self._loading:
            if dataset not in self._catalogs:
                self._catalogs[dataset] = load_profile_catalog(dataset, self._data)
            return self._catalogs[dataset]

    def generate(self, request: Request) -> Reply:
        """ "Yes"/"No" from the annotations of the images in the request."""
        catalog = self._catalog(request.dataset)
        rows = catalog.rows_of([image.image_id for image in request.images])
        shows_anchor = catalog.state[rows, catalog.category_index(request.anchor)] == PRESENT
        shows_target = catalog.state[rows, catalog.category_index(request.target)] == PRESENT
        answer = KINDS[request.kind].answer(shows_target[shows_anchor])
        return Reply(text=answer.capitalize(), images_sent=len(request.images))
