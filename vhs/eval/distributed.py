"""`vhs eval` under `torchrun` or `accelerate launch`: each rank answers its share of the haystacks on its own
device, through the one response cache, and rank 0 writes the one results table.

With more than one process (`vhs.parallel`: the launcher's variables, one gloo group), rank r takes
questions r, r + K, r + 2K, … of the K ranks, and rank 0 gathers every rank's rows back into the question
file's order. The cache is one SQLite file in WAL mode, which several processes write safely; a rank that
dies loses only the answers it had in flight, and a re-run reads everything else from the cache. A per-run
cap (`--max-requests`, `--max-usd`) is shared out evenly among the ranks, so that the run as a whole keeps it.
"""

from dataclasses import replace

import pandas as pd

from vhs.errors import VhsError
from vhs.eval.runner import RunOptions
from vhs.parallel import Ranks


def share(questions: list[dict], options: RunOptions, ranks: Ranks) -> tuple[list[dict], RunOptions]:
    """This rank's questions (every K-th, after `--limit`) and its share of the run's caps."""
    mine = questions[: options.limit][ranks.rank :: ranks.world]
    requests = options.max_requests
    if requests is not None:
        requests = requests // ranks.world + (ranks.rank < requests % ranks.world)
    usd = options.max_usd / ranks.world if options.max_usd is not None else None
    return mine, replace(options, limit=None, max_requests=requests, max_usd=usd)


def gather(table: pd.DataFrame | None, error: str | None, ranks: Ranks) -> pd.DataFrame | None:
    """Every rank's rows on rank 0, in the order of the questions before they were shared out (None on the
    other ranks); a rank's error is raised on every rank once all have reported."""
    import torch.distributed as dist

    parts: list[tuple[pd.DataFrame | None, str | None]] = [(None, None)] * ranks.world
    dist.all_gather_object(parts, (table, error))
    errors = [f"rank {rank}: {failed}" for rank, (_, failed) in enumerate(parts) if failed]
    if errors:
        raise VhsError("; ".join(errors))
    if not ranks.leader:
        return None
    # rank r held questions r, r + K, …: index each rank's rows by those positions, then merge by position
    placed = [part.set_axis(range(rank, rank + ranks.world * len(part), ranks.world)) for rank, (part, _) in enumerate(parts)]
    return pd.concat([part for part in placed if len(part)]).sort_index().reset_index(drop=True)
