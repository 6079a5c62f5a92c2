"""MIRAGE at the coco profile's size: CLIP's vision tower and a hub instruct LM around the same mechanisms.

CLIP ViT-L/14-336 (frozen; its second-to-last layer, the 576 patch tokens without CLS) -> the
Q-Former (32 queries, 4 layers) -> a 2-layer GELU projector into the LM's width; the retriever scores
each image from its 32 tokens and the question's LM embeddings; the kept images' tokens reach the LM
inside its own chat template ("Image 1: <32 tokens>\\n ... question"), and the answer is whichever of
"Yes" and "No" the LM rates higher as its first word. Everything after the encoder is shared with the
synth MIRAGE (`MirageMechanisms`). The LM stays frozen (the paper's LoRA is left out), so a
checkpoint holds only the trained parts (Q-Former, projector, retriever) and names the two hub models
it was trained on; they are downloaded on first use like any transformers weights.
"""

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from vhs.data.questions import PROMPT_PREFIX
from vhs.devices import resolve_device, resolve_dtype
from vhs.errors import VhsError
from vhs.mirage.compressor import QFormer
from vhs.mirage.model import COMPRESSIONS, MirageMechanisms
from vhs.mirage.retriever import Retriever
from vhs.protocol import ImageRef, open_rgb
from vhs.synth_models.lm import last_positions

KIND = "mirage-hub"
IMAGE, QUESTION = "\x00image\x00", "\x00question\x00"  # split points in the templated text, never tokenized


@dataclass
class HubMirageConfig:
    """The hub models it wraps and the sizes of the parts trained here (the paper's where it gives them)."""

    vision: str = "openai/clip-vit-large-patch14-336"
    lm: str = "Qwen/Qwen2.5-0.5B-Instruct"
    queries: int = 32
    qformer_layers: int = 4
    qformer_heads: int = 16
    retriever_layers: int = 2
    retriever_heads: int = 8
    max_question: int = 64
    compression: str = "image"
    chunk: int = 200  # the official code scores large haystacks 200 images at a time


class AnswerWords:
    """The first token of "Yes" and of "No" in a hub tokenizer: the two answers the LM chooses between."""

    def __init__(self, tokenizer) -> None:
        self.yes, self.no = (tokenizer(word, add_special_tokens=False)["input_ids"][0] for word in ("Yes", "No"))

    def answers(self, questions: list[dict]) -> list[int]:
        """Each question's answer token: the training target."""
        return [self.yes if q["answer"] == "yes" else self.no for q in questions]


class HubMirage(MirageMechanisms, nn.Module):
    """Frozen CLIP vision tower and hub LM; Q-Former, projector and retriever trained here."""

    kind = KIND
    trained_parts = ("qformer", "question_in", "projector", "retriever")

    def __init__(self, config: HubMirageConfig, device: str = "auto", dtype: str = "auto") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, CLIPImageProcessor, CLIPVisionModel

        super().__init__()
        if config.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, not {config.compression!r}")
        self.config = config
        where = resolve_device(device)
        frozen = resolve_dtype(dtype, where)
        try:
            self.vision = CLIPVisionModel.from_pretrained(config.vision, dtype=frozen).requires_grad_(False).eval()
            self.processor = CLIPImageProcessor.from_pretrained(config.vision)
            self.lm = AutoModelForCausalLM.from_pretrained(config.lm, dtype=frozen).requires_grad_(False).eval()
            self.hf_tokenizer = AutoTokenizer.from_pretrained(config.lm)
        except OSError as exc:
            raise VhsError(f"cannot load MIRAGE's hub models: {str(exc).splitlines()[0]}") from None
        if self.hf_tokenizer.chat_template is None:
            raise VhsError(f"{config.lm} has no chat template; MIRAGE needs an instruct LM")
        self.tokenizer = AnswerWords(self.hf_tokenizer)
        width, lm_width = self.vision.config.hidden_size, self.lm.config.hidden_size
        self.qformer = QFormer(width, config.queries, config.qformer_layers, config.qformer_heads)
        self.question_in = nn.Linear(lm_width, width) if config.compression == "query" else None
        self.projector = nn.Sequential(nn.Linear(width, lm_width), nn.GELU(), nn.Linear(lm_width, lm_width))
        self.retriever = Retriever(lm_width, config.queries, config.max_question, config.retriever_layers, config.retriever_heads)
        self._frame_ids: dict[int, list[list[int]]] = {}
        self.to(where)

    def train(self, mode: bool = True) -> "HubMirage":
        """Train mode for the trained parts; the frozen hub models stay in eval mode."""
        super().train(mode)
        self.vision.eval()
        self.lm.eval()
        return self

    def encode_images(self, images: Sequence[ImageRef]) -> torch.Tensor:
        """Haystack images -> CLIP features (see `encode_paths`)."""
        return self.encode_paths([image.path for image in images])

    @torch.no_grad()
    def encode_paths(self, paths: Sequence[Path]) -> torch.Tensor:
        """Image files -> (N, patches, width) features of CLIP's second-to-last layer, CLS dropped, on the CPU in float16."""
        pixels = self.processor(images=[open_rgb(path) for path in paths], return_tensors="pt")["pixel_values"]
        hidden = self.vision(pixels.to(self.device, self.vision.dtype), output_hidden_states=True).hidden_states[-2]
        return hidden[:, 1:].to("cpu", torch.float16)

    def word_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """The hub LM's input embeddings, as float32."""
        return self.lm.get_input_embeddings()(ids.to(self.device)).float()

    def question_ids(self, question: str) -> list[int]:
        """The question's tokens in the hub tokenizer (at most `max_question`)."""
        return self.hf_tokenizer(question, add_special_tokens=False)["input_ids"][: self.config.max_question]

    def frame_ids(self, images: int) -> list[list[int]]:
        """The chat template's text around `images` images and the question, as token-id pieces:
        images + 2 pieces (before image 1, ..., after the last image, after the question)."""
        if images not in self._frame_ids:
            content = "".join(f"Image {n}: {IMAGE}\n" for n in range(1, images + 1)) + PROMPT_PREFIX + QUESTION
            text = self.hf_tokenizer.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
            )
            pieces = [p for part in text.split(QUESTION) for p in part.split(IMAGE)]
            self._frame_ids[images] = [self.hf_tokenizer(p, add_special_tokens=False)["input_ids"] for p in pieces]
        return self._frame_ids[images]

    def lm_tokens(self, images: int, question: list[int]) -> int:
        """The framed sequence's length: the template's text, K tokens per image, the question."""
        return sum(map(len, self.frame_ids(images))) + images * self.config.queries + len(question)

    def answer_logits(self, kept: list[torch.Tensor], prompts: list[list[int]]) -> torch.Tensor:
        """The kept images' tokens and the question inside the chat template -> (B, vocab) logits at its end."""
        rows = []
        for tokens, prompt in zip(kept, prompts, strict=True):
            pieces = [self._embed(ids) for ids in self.frame_ids(len(tokens))]
            parts = [pieces[0]]
            for image, text in zip(tokens, pieces[1:-1], strict=True):
                parts += [image, text]
            rows.append(torch.cat([*parts, self._embed(prompt), pieces[-1]]))
        lengths = torch.tensor([len(r) for r in rows], device=self.device)
        return last_positions(self._run_lm(rows), lengths)

    def caption_loss(self, tokens: torch.Tensor, captions: list[str]) -> torch.Tensor:
        """Next-token loss of each image's caption after its K tokens (the captioning stage's objective)."""
        ids = [self.hf_tokenizer(c, add_special_tokens=False)["input_ids"] for c in captions]
        logits = self._run_lm([torch.cat([image, self._embed(caption)]) for image, caption in zip(tokens, ids, strict=True)])
        predicted = logits[:, tokens.shape[1] - 1 : -1]  # the position before each caption token predicts it
        target = torch.full(predicted.shape[:2], -100, dtype=torch.long, device=self.device)
        for row, caption in enumerate(ids):
            target[row, : len(caption)] = torch.tensor(caption, device=self.device)
        return F.cross_entropy(predicted.reshape(-1, predicted.shape[-1]), target.reshape(-1), ignore_index=-100)

    def _embed(self, ids: list[int]) -> torch.Tensor:
        return self.word_embeddings(torch.tensor(ids, dtype=torch.long))

    def _run_lm(self, rows: list[torch.Tensor]) -> torch.Tensor:
        """Right-padded embedding rows through the LM -> (B, T, vocab) float32 logits."""
        lengths = torch.tensor([len(r) for r in rows], device=self.device)
        embeddings = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        mask = torch.arange(embeddings.shape[1], device=self.device)[None] < lengths[:, None]
        return self.lm(inputs_embeds=embeddings.to(self.lm.dtype), attention_mask=mask.long()).logits.float()

    def save_pretrained(self, out: Path, curves: dict[str, list[float]] | None = None, extra: dict | None = None) -> None:
        """config.json (kind, config, extra facts), the trained parts' model.safetensors, curve.json."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if k.split(".")[0] in self.trained_parts}
        save_file(state, out / "model.safetensors")
        (out / "curve.json").write_text(json.dumps(curves or {}))
        (out / "config.json").write_text(json.dumps({"kind": KIND, "config": asdict(self.config), **(extra or {})}, indent=2))

    @classmethod
    def from_pretrained(cls, path: Path, device: str = "auto", dtype: str = "auto") -> "HubMirage":
        """The hub models named in `path/config.json`, with the trained parts loaded (in eval mode)."""
        saved = json.loads((Path(path) / "config.json").read_text())
        model = cls(HubMirageConfig(**saved["config"]), device, dtype)
        missing, unexpected = model.load_state_dict(load_file(Path(path) / "model.safetensors"), strict=False)
        if unexpected or any(k.split(".")[0] in cls.trained_parts for k in missing):
            raise VhsError(f"{path}: weights do not match the config ({len(unexpected)} unexpected, {len(missing)} missing)")
        return model.eval()
