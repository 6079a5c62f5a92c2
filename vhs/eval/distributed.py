"""`vhs eval` under `torchrun` or `accelerate launch`: each rank answers its share of the haystacks on its own
device, through the one response cache, and rank 0 writes the one results table.

A launcher sets `WORLD_SIZE`, `RANK` and `LOCAL_RANK`; with more than one process, the ranks join a gloo
process group (only result tables cross it, so ranks may share a GPU), rank r takes questions r, r + K,
r + 2K, … of the K ranks, and rank 0 gathers every rank's rows back into the question file's order. The
cache is one SQLite file in WAL mode, which several processes write safely; a rank that dies loses only the
answers it had in flight, and a re-run reads everything else from the cache. A per-run cap (`--max-requests`,
`--max-usd`) is shared out evenly among the ranks, so that the run as a whole keeps it.
"""

import os
from dataclasses import dataclass, replace
from datetime import timedelta

import pandas as pd
import torch

from vhs.errors import VhsError
from vhs.eval.runner import RunOptions

TIMEOUT = timedelta(hours=2)  # how long a rank waits for the slowest one at the gather


@dataclass(frozen=True)
class Ranks:
    """This process's place among the launcher's processes."""

    rank: int
    world: int
    local_rank: int

    @property
    def leader(self) -> bool:
        """Rank 0: the one that writes the results."""
        return self.rank == 0


def launched() -> Ranks | None:
    """The ranks a launcher (torchrun, accelerate launch) started this process among; None when run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def join(ranks: Ranks) -> None:
    """Join the launcher's process group; on CUDA, make this rank's GPU the current device."""
    import torch.distributed as dist

    if torch.cuda.is_available():  # "cuda" then means this rank's GPU for every backend (ranks share GPUs if fewer)
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=TIMEOUT)  # only result tables cross: gloo, even beside GPUs


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


def leave() -> None:
    """Leave the process group."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
