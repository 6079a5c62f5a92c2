"""`synth-llava:DIR`: the LLaVA-style model trained here (`vhs train synth-llava`); its context holds 3 images."""

from pathlib import Path

import torch

from vhs.models.base import BatchedBackend
from vhs.protocol import Limits, Reply, Request
from vhs.synth_models.data import to_float
from vhs.synth_models.inference import PerImage, weights_digest
from vhs.synth_models.llava import SynthLlava

DEFAULT_DIR = "runs/synth-llava"


class SynthLlavaBackend(BatchedBackend):
    """Batched answers from a SynthLlava checkpoint; over-context haystacks are never run."""

    name = "synth-llava"
    batch_size = 32

    def __init__(self, model_id: str = "") -> None:
        path = Path(model_id or DEFAULT_DIR)
        self.model = SynthLlava.from_pretrained(path)
        super().__init__(str(path), weights=weights_digest(path))
        self.limits = Limits(context_tokens=self.model.config.context)
        self.image_tokens = self.model.config.tokens_per_image
        self.features = PerImage(lambda pixels: list(self._encode(pixels)))

    @torch.no_grad()
    def _encode(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.image_encoder(to_float(pixels))

    def prompt_tokens(self, request: Request) -> int:
        """64 tokens per image plus the question."""
        return self.model.tokens_needed(len(request.images), request.question)

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """One forward pass for the whole batch."""
        features = [torch.stack(self.features.of(r.images)) for r in requests]
        answers = self.model.answer(features, [r.question for r in requests])
        return [
            Reply(text=a, input_tokens=self.prompt_tokens(r), output_tokens=1, images_sent=len(r.images))
            for a, r in zip(answers, requests, strict=True)
        ]
