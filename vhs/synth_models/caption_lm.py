"""synth-caption: the caption-then-LLM baseline. The captioner writes one caption per image; the tiny
LM reads them numbered, in haystack order, then the question: "image 1 : a red circle . image 2 :
nothing . question : ... {target}" (the answer is read after the target's name). Its text window is fixed
(256 tokens), about 15-20 captions.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vhs.data.catalog import Catalog
from vhs.data.kinds import kind_of
from vhs.synth_models.captioner import Captioner, CaptionerConfig
from vhs.synth_models.checkpoint import Checkpointable
from vhs.synth_models.clip import pad, visible_names
from vhs.synth_models.features import patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.lm import LMConfig, TinyLM, question_starts, yes_or_no
from vhs.synth_models.tokenizer import Tokenizer, caption_of
from vhs.synth_models.training_questions import in_size_runs, training_questions


@dataclass
class CaptionLMConfig:
    """The captioner inside, and the LM's sizes and text window."""

    width: int = 96
    categories: list[str] = field(default_factory=list)
    threshold: float = 0.0  # the captioner's
    lm_width: int = 96
    layers: int = 2
    heads: int = 4
    context: int = 256
    vocab: int = len(Tokenizer())


class SynthCaptionLM(Checkpointable):
    """Captioner + tiny LM over numbered captions."""

    kind = "synth-caption"
    config_class = CaptionLMConfig

    def __init__(self, config: CaptionLMConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = Tokenizer()
        self.captioner = Captioner(CaptionerConfig(config.width, list(config.categories), config.threshold))
        self.lm = TinyLM(LMConfig(config.vocab, config.lm_width, config.layers, config.heads, config.context))

    def prompt_ids(self, captions: list[str], question: str) -> list[int]:
        """The numbered captions, then the question up to its target's name, as word ids."""
        text = " ".join(f"image {n} : {caption} ." for n, caption in enumerate(captions, start=1))
        return self.tokenizer.encode(f"{text} question :") + self.tokenizer.question(question)

    def answer_logits(self, prompts: list[list[int]]) -> torch.Tensor:
        """(B, vocab) logits at each prompt's end."""
        ids = pad(prompts)
        lengths = torch.tensor([len(p) for p in prompts])
        if lengths.max() > self.config.context:
            raise ValueError(f"prompt of {int(lengths.max())} tokens exceeds the {self.config.context}-token context")
        return self.lm(self.lm.words(ids), lengths, question_starts(prompts, self.tokenizer.ids["question"]))

    @torch.no_grad()
    def answer(self, prompts: list[list[int]]) -> list[str]:
        """ "Yes" or "No" per prompt."""
        return yes_or_no(self.answer_logits(prompts), self.tokenizer.yes, self.tokenizer.no)


def caption_names(caption: str) -> set[str]:
    """The category names a caption lists: "a red circle , an orange star" -> {"red circle", "orange star"}."""
    return {item.split(" ", 1)[1] for item in caption.split(" , ") if " " in item}


def read_captions(captions: list[str], question: dict) -> str | None:
    """The answer the captions give when read literally: the images whose caption names the anchor
    decide it (single needle and "any": one of them names the target; "all": every one does);
    None when no caption names the anchor."""
    holders = [names for names in map(caption_names, captions) if question["anchor"] in names]
    if not holders:
        return None
    return kind_of(question).answer(question["target"] in names for names in holders)


def train_caption_lm(
    captioner: Captioner,
    catalog: Catalog,
    steps: int,
    seed: int,
    batch: int = 128,
    lr: float = 3e-3,
    reading_share: float = 0.5,
    reading_questions: int = 20_000,
    haystack_sizes: tuple[int, ...] = (1, 2, 3, 5, 8),
    haystack_batch: int = 32,
    haystack_lr: float = 1e-3,
) -> tuple[SynthCaptionLM, dict[str, list[float]]]:
    """Train the LM in two phases (the curve keeps each):

    1. reading (`reading_share` of the steps): single-image questions over the true captions, the
       text-only "pretraining" every later model starts from;
    2. haystacks (the rest, at `haystack_lr`, batches of `haystack_batch`, each of one size of
       `haystack_sizes`): questions read from the captioner's own captions and answered as those captions
       say (`read_captions`; the true answer where no caption names the anchor), so that the LM learns to
       read what it is given rather than second-guess the captioner.
    """
    torch.manual_seed(seed)
    config = CaptionLMConfig(
        width=captioner.config.width, categories=list(captioner.config.categories), threshold=captioner.config.threshold
    )
    model = SynthCaptionLM(config)
    model.captioner.load_state_dict(captioner.state_dict())
    model.captioner.requires_grad_(False)
    truth = [caption_of(names) for names in visible_names(catalog)]
    written = model.captioner.captions_from_features(patch_features(model.captioner.image_encoder, catalog))
    first = int(steps * reading_share)
    reading = training_questions(catalog, (1,), min(reading_questions, steps * batch), seed, multi=False)
    haystacks = in_size_runs(
        [
            q
            # an eighth as many distinct questions as the phase draws: each is seen about eight times
            for q in training_questions(catalog, haystack_sizes, (steps - first) * haystack_batch // 8, seed + 1)
            if len(model.prompt_ids([written[r] for r in catalog.rows_of(q["image_ids"])], q["question"])) <= config.context
        ],
        haystack_batch,
        seed + 1,
    )
    model.train()

    def phase(questions: list[dict], captions: list[str], batch: int) -> Callable[[int], torch.Tensor]:
        def loss_at(step: int) -> torch.Tensor:
            chosen = [questions[(step * batch + i) % len(questions)] for i in range(batch)]
            shown = [[captions[r] for r in catalog.rows_of(q["image_ids"])] for q in chosen]
            prompts = [model.prompt_ids(c, q["question"]) for c, q in zip(shown, chosen, strict=True)]
            literal = [{**q, "answer": read_captions(c, q) or q["answer"]} for c, q in zip(shown, chosen, strict=True)]
            return F.cross_entropy(model.answer_logits(prompts), torch.tensor(model.tokenizer.answers(literal)))

        return loss_at

    curves = {
        "reading": fit(model.lm.parameters(), first, lr, "train synth-caption: reading", phase(reading, truth, batch)),
        "haystacks": fit(
            model.lm.parameters(),
            steps - first,
            haystack_lr,
            "train synth-caption: haystacks",
            phase(haystacks, written, haystack_batch),
        ),
    }
    return model.eval(), curves
