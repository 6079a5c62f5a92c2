"""synth-llava: a LLaVA-style full-context model on the tiny LM.

Every one of an image's 64 patch features is projected into the LM's sequence, framed like the
reader's captions ("image 1 : <64 patches> . image 2 : ..."), all images in haystack order, then
"question :" and the question up to its target's name (where the answer is read). The LM's window
is fixed (256 tokens), so like LLaVA-v1.5 in its 2K context it holds only a few images: 3 of 68
tokens plus a question; a larger haystack is not answerable.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vhs.data.catalog import Catalog
from vhs.synth_models.caption_lm import SynthCaptionLM
from vhs.synth_models.checkpoint import Checkpointable
from vhs.synth_models.clip import ImageEncoder, pad
from vhs.synth_models.data import patch_labels
from vhs.synth_models.features import patch_features
from vhs.synth_models.fit import fit
from vhs.synth_models.lm import LMConfig, TinyLM, question_starts, yes_or_no
from vhs.synth_models.tokenizer import Tokenizer
from vhs.synth_models.training_questions import in_size_runs, training_questions

ALIGN_WEIGHT = 4.0  # the alignment loss's weight beside the answer loss (the best of those tried: the book's appendix on tuning)
ALIGN_PER_STEP = 8  # alignment steps (of 32 images) per answer step


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
        self.projector = nn.Sequential(
            nn.Linear(config.width, config.lm_width), nn.GELU(), nn.Linear(config.lm_width, config.lm_width)
        )
        self.lm = TinyLM(LMConfig(config.vocab, config.lm_width, config.layers, config.heads, config.context))

    def prompt_ids(self, question: str) -> list[int]:
        """The word ids that follow the images."""
        return self.tokenizer.question(question)

    def tokens_needed(self, images: int, question: str) -> int:
        """Sequence length for a haystack of `images` images and this question."""
        return frame_length(self.tokenizer, images, self.config.tokens_per_image, len(self.prompt_ids(question)))

    def answer_logits(self, features: list[torch.Tensor], prompts: list[list[int]]) -> torch.Tensor:
        """Per sample (n_images, 64, width) features and prompt ids -> next-word logits at the answer
        position, (B, vocab); every sample's patches go through the projector in one pass."""
        return self.read(self.projector(torch.cat(features)), [len(f) for f in features], prompts)

    def read(self, projected: torch.Tensor, counts: list[int], prompts: list[list[int]]) -> torch.Tensor:
        """Every sample's projected patches in one (sum(counts), 64, lm_width) tensor, `counts` images per
        sample in order, and prompt ids -> (B, vocab) answer logits."""
        return self.lm(*frame(self.lm, self.tokenizer, list(projected.split(counts)), prompts))

    @torch.no_grad()
    def answer(self, features: list[torch.Tensor], questions: list[str]) -> list[str]:
        """ "Yes" or "No" per sample, whichever the LM rates higher."""
        logits = self.answer_logits(features, [self.prompt_ids(q) for q in questions])
        return yes_or_no(logits, self.tokenizer.yes, self.tokenizer.no)


def train_llava(
    reader: SynthCaptionLM,
    catalog: Catalog,
    steps: int,
    seed: int,
    batch: int = 32,
    lr: float = 2e-3,
    align_per_step: int = ALIGN_PER_STEP,
    align_images: int = 32,
    align_lr: float = 1e-2,
    answer_sizes: tuple[int, ...] = (1, 1, 2, 3),
) -> tuple[SynthLlava, dict[str, list[float]]]:
    """LLaVA's two stages on a pretrained reader (synth-caption's LM and encoder, as LLaVA starts from Vicuna and CLIP).

    1. align (`align_per_step` x `steps` steps of `align_images` images, LM frozen): the projector
       learns to turn each patch into the sum of the word embeddings of the objects whose boxes cover
       it, or "nothing" (`word_sums`, as MIRAGE's slots), by `alignment`;
    2. answer (`steps` steps at `lr`): projector and LM on VHs questions of `answer_sizes` images from the
       training split, each batch of one size (`in_size_runs`), the alignment loss kept beside the answer loss.

    The alignment decides how long the answer stage takes, so it runs first and long (the book's appendix
    on tuning says what was tried).
    """
    torch.manual_seed(seed)
    model = SynthLlava(
        LlavaConfig(
            width=reader.config.width, lm_width=reader.config.lm_width, layers=reader.config.layers, heads=reader.config.heads
        )
    )
    model.image_encoder.load_state_dict(reader.captioner.image_encoder.state_dict())
    model.image_encoder.requires_grad_(False)
    model.lm.load_state_dict(reader.lm.state_dict())
    features = patch_features(model.image_encoder, catalog)
    labels = patch_labels(catalog)
    vocabulary = torch.tensor([model.tokenizer.ids[name] for name in [*catalog.category_names, "nothing"]])
    questions = in_size_runs(training_questions(catalog, answer_sizes, steps * batch // 6 + 2, seed), batch, seed)
    generator = torch.Generator().manual_seed(seed)
    model.train()

    def aligned(projected: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return alignment(projected, labels[rows], model.lm.words(vocabulary).detach())

    def align_at(step: int) -> torch.Tensor:
        rows = torch.randint(len(features), (align_images,), generator=generator)
        return aligned(model.projector(features[rows]), rows)

    def answer_at(step: int) -> torch.Tensor:
        chosen = [questions[(step * batch + i) % len(questions)] for i in range(batch)]
        rows = [torch.from_numpy(catalog.rows_of(q["image_ids"])) for q in chosen]
        everyone = torch.cat(rows)
        projected = model.projector(features[everyone])  # read by the answer and the alignment alike
        logits = model.read(projected, [len(r) for r in rows], [model.prompt_ids(q["question"]) for q in chosen])
        target = torch.tensor(model.tokenizer.answers(chosen))
        return F.cross_entropy(logits, target) + aligned(projected, everyone)

    curves = {"align": fit(model.projector.parameters(), align_per_step * steps, align_lr, "train synth-llava: align", align_at)}
    trainable = [*model.projector.parameters(), *model.lm.parameters()]
    curves["answer"] = fit(trainable, steps, lr, "train synth-llava: answer", answer_at)
    return model.eval(), curves


def alignment(projected: torch.Tensor, presence: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """`ALIGN_WEIGHT` x the squared distance (summed over the width, as MIRAGE's caption loss is) between
    projected patches (..., D) and their `word_sums` targets, averaged over the patches that show an
    object and over those that show none, the two means weighted alike (most patches are empty)."""
    error = (projected - word_sums(presence, words)).pow(2).sum(-1)
    shows = (presence.sum(-1) > 0).float()
    means = [(error * mask).sum() / mask.sum().clamp(min=1) for mask in (shows, 1 - shows)]
    return ALIGN_WEIGHT * (means[0] + means[1]) / 2


def frame(
    lm: TinyLM, tokenizer: Tokenizer, images: list[torch.Tensor], prompts: list[list[int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The LM's input for visual tokens: per sample, each image's (tokens, lm_width) block framed as the
    reader's captions are ("image N : <tokens> ."), then "question :" and the prompt ids.

    Returns the right-padded embeddings (B, T, lm_width), each row's length and where its question
    starts (the LM's three inputs); a row longer than the LM's context is a ValueError. The words of
    every row are looked up in one pass and the image blocks written into their slots (a padded
    position holds the padding word's embedding; no real position attends to it).
    """
    rows, slots = [], []
    for tokens, prompt in zip(images, prompts, strict=True):
        ids, slot = [], []
        for number in range(1, len(tokens) + 1):
            head = tokenizer.encode(f"image {number} :")
            ids += [*head, *[tokenizer.pad] * tokens.shape[1], *tokenizer.encode(".")]
            slot += [False] * len(head) + [True] * tokens.shape[1] + [False]
        ids += [*tokenizer.encode("question :"), *prompt]
        rows.append(ids)
        slots.append(slot + [False] * (len(ids) - len(slot)))
    lengths = torch.tensor([len(r) for r in rows])
    if lengths.max() > lm.config.context:
        raise ValueError(f"sequence of {int(lengths.max())} tokens exceeds the {lm.config.context}-token context")
    blocks = torch.cat([t.reshape(-1, t.shape[-1]) for t in images])
    embeddings = lm.words(pad(rows)).masked_scatter(pad(slots).bool()[..., None], blocks)
    return embeddings, lengths, question_starts(rows, tokenizer.ids["question"])


def frame_length(tokenizer: Tokenizer, images: int, tokens_per_image: int, prompt: int) -> int:
    """The length `frame` gives `images` images of `tokens_per_image` tokens and a `prompt`-word question."""
    per_image = len(tokenizer.encode("image 1 : ."))  # every number is one token
    return images * (tokens_per_image + per_image) + len(tokenizer.encode("question :")) + prompt


def word_sums(presence: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
    """(..., C) 0/1 presence and (C+1, D) word embeddings ("nothing" last) -> (..., D): the sum of the
    present categories' words, or "nothing" where none is present (a patch's or a slot's target)."""
    sums = presence.float() @ words[:-1]
    return torch.where(presence.sum(-1, keepdim=True) == 0, words[-1], sums)
