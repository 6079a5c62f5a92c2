"""`synth-caption:DIR`: caption-then-LLM trained here (`vhs train synth-caption`); each image captioned once."""

from pathlib import Path

from vhs.models.base import BatchedBackend
from vhs.protocol import Limits, Reply, Request
from vhs.synth_models.caption_lm import SynthCaptionLM
from vhs.synth_models.inference import PerImage, weights_digest

DEFAULT_DIR = "runs/synth-caption"
FRAME_WORDS = 4  # "image N : ." around each caption


class SynthCaptionBackend(BatchedBackend):
    """Captions every distinct image once, then asks the tiny LM over the numbered captions."""

    name = "synth-caption"
    batch_size = 32

    def __init__(self, model_id: str = "") -> None:
        path = Path(model_id or DEFAULT_DIR)
        self.model = SynthCaptionLM.from_pretrained(path)
        super().__init__(str(path), weights=weights_digest(path))
        self.limits = Limits(context_tokens=self.model.config.context)
        self.captions = PerImage(self.model.captioner.captions)

    def _prompt(self, request: Request) -> list[int]:
        return self.model.prompt_ids(self.captions.of(request.images), request.question)

    def prompt_tokens(self, request: Request) -> int:
        """Words of all captions plus the question; a haystack whose framing alone ("image N : .",
        4 words per image) overflows the context is counted by its framing, without captioning it."""
        framing = FRAME_WORDS * len(request.images)
        if framing > self.model.config.context:
            return framing
        return len(self._prompt(request))

    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """One forward pass for the whole batch."""
        prompts = [self._prompt(r) for r in requests]
        answers = self.model.answer(prompts)
        return [
            Reply(text=a, input_tokens=len(p), output_tokens=1, images_sent=len(r.images))
            for a, p, r in zip(answers, prompts, requests, strict=True)
        ]
