"""The processes a launcher (`torchrun`, `accelerate launch`) started: which one this is, their process group,
and the gradient average that makes training data-parallel.

Alone (no launcher, or one process) this is rank 0 of 1 and nothing here communicates, so a run is exactly
what it was before any of this existed. With K processes the ranks join one gloo group (gradients and result
tables cross it on the CPU, so ranks may share a GPU); on CUDA each rank makes its `LOCAL_RANK`'s GPU the
current device, so "cuda" means that GPU for every model it loads.
"""

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads only where a rank joins a group or trains: `vhs questions` never needs it
    import torch

TIMEOUT = timedelta(hours=2)  # how long a rank waits for the slowest one


@dataclass(frozen=True)
class Ranks:
    """This process's place among the launcher's processes."""

    rank: int
    world: int
    local_rank: int

    @property
    def leader(self) -> bool:
        """Rank 0: the one that writes what the run produces."""
        return self.rank == 0


ALONE = Ranks(0, 1, 0)


def launched() -> Ranks | None:
    """The ranks a launcher started this process among; None when it runs alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    return Ranks(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))


def join(ranks: Ranks) -> None:
    """Join the launcher's process group; on CUDA, make this rank's GPU the current device."""
    import torch
    import torch.distributed as dist

    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank % torch.cuda.device_count())
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=TIMEOUT)


def leave() -> None:
    """Leave the process group."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def current() -> Ranks:
    """This process's ranks in the group it has joined (`ALONE` when it has joined none)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return ALONE
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_seed(seed: int) -> int:
    """The seed of this rank's data: `seed` itself on rank 0 (and alone), a stream of its own on every other."""
    return seed + 1_000_003 * current().rank


def average_gradients(parameters: list["torch.nn.Parameter"]) -> None:
    """Replace each gradient by its mean over the ranks (nothing alone): what DDP's all-reduce does, for a
    loop that sees parameters rather than one module to wrap."""
    import torch.distributed as dist

    world = current().world
    if world == 1:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            grad = parameter.grad.detach()
            on_cpu = grad.cpu()  # gloo reduces CPU tensors
            dist.all_reduce(on_cpu)
            grad.copy_(on_cpu.div_(world))
