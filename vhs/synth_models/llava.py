"""synth-llava: a LLaVA-style full-context model on the tiny LM.

Every one of an image's 64 patch features is projected into the LM's sequence (plus an embedding
saying which image it belongs to), all images in haystack order, then the question, up to its target's name (where the answer is read).
The LM's window is fixed (256 tokens), so like LLaVA-v1.5 in its 2K context it holds only a few
images: 3 of 64 tokens plus a question; a larger haystack is not answerable.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vhs.data.catalog import Catalog
from vhs.synth_models.checkpoint import Checkpointable
from vhs.synth_models.clip import Clip, ImageEncoder
from vhs.synth_models.data import load_pixels, patch_labels
from vhs.synth_models.features import patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.lm import LMConfig, TinyLM, last_logits, yes_or_no
from vhs.synth_models.tokenizer import Tokenizer
from vhs.synth_models.training_questions import training_questions

ALIGN_WEIGHT = 1.0  # LLaVA's stage-1 idea: projected patches learn to resemble their objects' words


@dataclass
class LlavaConfig:
    """Encoder width, LM sizes and the fixed context window."""

    width: int = 96
    lm_width: int = 96
    layers: int = 2
    heads: int = 4
    context: int = 256
    tokens_per_image: int = 64
    vocab: int = len(Tokenizer())


class SynthLlava(Checkpointable):
    """Frozen encoder -> projector -> tiny LM over [image tokens ; question]."""

    kind = "synth-llava"
    config_class = LlavaConfig

    def __init__(self, config: LlavaConfig) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = Tokenizer()
        self.image_encoder = ImageEncoder(config.width)
        self.projector = nn.Sequential(nn.Linear(config.width, config.lm_width), nn.GELU(), nn.Linear(config.lm_width, config.lm_width))
        self.image_number = nn.Embedding(config.context // config.tokens_per_image + 1, config.lm_width)
        nn.init.normal_(self.image_number.weight, std=0.02)  # as the LM's own embeddings: N(0, 1) would drown what a patch shows
        self.lm = TinyLM(LMConfig(config.vocab, config.lm_width, config.layers, config.heads, config.context))

    def prompt_ids(self, question: str) -> list[int]:
        """The word ids that follow the images."""
        return self.tokenizer.question(question)

    def tokens_needed(self, images: int, question: str) -> int:
        """Sequence length for a haystack of `images` images and this question."""
        return images * self.config.tokens_per_image + len(self.prompt_ids(question))

    def embed(self, features: list[torch.Tensor], prompts: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: (n_images, 64, width) features and prompt ids -> right-padded embeddings and lengths."""
        rows = []
        for images, prompt in zip(features, prompts, strict=True):
            numbers = self.image_number(torch.arange(len(images))).unsqueeze(1)
            visual = (self.projector(images) + numbers).reshape(-1, self.config.lm_width)
            rows.append(torch.cat([visual, self.lm.words(torch.tensor(prompt))]))
        lengths = torch.tensor([len(r) for r in rows])
        if lengths.max() > self.config.context:
            raise ValueError(f"sequence of {int(lengths.max())} tokens exceeds the {self.config.context}-token context")
        return nn.utils.rnn.pad_sequence(rows, batch_first=True), lengths

    def answer_logits(self, features: list[torch.Tensor], prompts: list[list[int]]) -> torch.Tensor:
        """Next-word logits at the answer position, (B, vocab)."""
        embeddings, lengths = self.embed(features, prompts)
        return last_logits(self.lm(embeddings), lengths)

    @torch.no_grad()
    def answer(self, features: list[torch.Tensor], questions: list[str]) -> list[str]:
        """ "Yes" or "No" per sample, whichever the LM rates higher."""
        logits = self.answer_logits(features, [self.prompt_ids(q) for q in questions])
        return yes_or_no(logits, self.tokenizer.yes, self.tokenizer.no)


def train_llava(clip: Clip, catalog: Catalog, steps: int, seed: int, batch: int = 32, lr: float = 3e-3) -> tuple[SynthLlava, dict[str, list[float]]]:
    """Train projector + LM on VHs questions of 1-3 images from the training split (encoder frozen).

    Beside the answer loss, an alignment loss makes each projected patch score high against the word
    embedding of every category whose box covers it (the curve records the sum).
    """
    torch.manual_seed(seed)
    model = SynthLlava(LlavaConfig(width=clip.config.width))
    model.image_encoder.load_state_dict(clip.image_encoder.state_dict())
    model.image_encoder.requires_grad_(False)
    features = patch_features(model.image_encoder, load_pixels(catalog))
    dense = patch_labels(catalog)
    category_tokens = torch.tensor([model.tokenizer.ids[name] for name in catalog.category_names])
    questions = training_questions(catalog, (1, 1, 2, 3), steps * batch // 6 + 2, seed)
    model.train()

    def loss_at(step: int) -> torch.Tensor:
        chosen = [questions[(step * batch + i) % len(questions)] for i in range(batch)]
        rows = [torch.from_numpy(catalog.rows_of(q["image_ids"])) for q in chosen]
        logits = model.answer_logits([features[r] for r in rows], [model.prompt_ids(q["question"]) for q in chosen])
        target = torch.tensor([model.tokenizer.yes if q["answer"] == "yes" else model.tokenizer.no for q in chosen])
        seen = torch.cat(rows)
        alignment = model.projector(features[seen]) @ model.lm.words(category_tokens).T
        return F.cross_entropy(logits, target) + ALIGN_WEIGHT * F.binary_cross_entropy_with_logits(alignment, dense[seen])

    curve = fit([p for p in model.parameters() if p.requires_grad], steps, lr, "train synth-llava", loss_at)
    return model.eval(), {"train": curve}
