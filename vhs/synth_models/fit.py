"""The one optimisation loop every synth model uses: AdamW, a one-cycle schedule, a tqdm bar showing loss, and
under a launcher the ranks' gradients averaged at each step (`vhs.parallel`)."""

from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from vhs.parallel import average_gradients

WARMUP = 0.1  # the one-cycle schedule's share of steps spent warming up
WEIGHT_DECAY = 0.01


def fit(
    parameters: Iterable[nn.Parameter],
    steps: int,
    lr: float,
    desc: str,
    loss_at: Callable[[int], torch.Tensor],
    weight_decay: float = WEIGHT_DECAY,
    max_grad_norm: float | None = None,
) -> list[float]:
    """Minimise `loss_at(step)` for `steps` steps, the gradient's norm clipped to `max_grad_norm` if
    given; return the loss of every step."""
    parameters = list(parameters)
    optimiser = torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)
    warmup = WARMUP if steps != 10 else 0.2  # OneCycleLR divides by zero when the warm-up is exactly 1 step
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps, pct_start=warmup)
    curve = []
    for step in (bar := tqdm(range(steps), desc=desc, unit="step")):
        loss = loss_at(step)
        optimiser.zero_grad()
        loss.backward()
        average_gradients(parameters)  # under torchrun: every rank steps with the ranks' mean gradient
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimiser.step()
        schedule.step()
        curve.append(round(loss.item(), 5))
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return curve
