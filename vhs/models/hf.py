"""`hf:MODEL`: any transformers model, by hub name or local path, with greedy decoding.

A model whose config has a vision tower (LLaVA-v1.5, Qwen2-VL, Idefics ...) loads through
`AutoModelForImageTextToText` + `AutoProcessor` and gets the haystack's images first, then the
prompt, through its own chat template (LLaVA-1.5: `USER: <image>\n<image>\n... {prompt} ASSISTANT:`).
A text-only model (the caption baseline's LLM) loads through `AutoModelForCausalLM` + its tokenizer.

The context window is read from the config (`text_config.max_position_embeddings`), or given as
`?context=N` (LLaVA-1.5 was trained with 2,048 tokens, which is why it holds only ~3 images of 576
tokens). A haystack that does not fit is reported `not_answerable:context` without running.
Options: `dtype` (auto: bfloat16 on CUDA, float32 on CPU), `device` (auto: CUDA when present),
`max_new_tokens` (8), `batch_size` (auto: `CUDA_BATCH` haystacks per `generate` on CUDA, 1 elsewhere),
`context`, `device_map` (`auto`: accelerate spreads a model too large for one GPU over all of them).
"""

import hashlib
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vhs.devices import resolve_device, resolve_dtype
from vhs.models.base import BatchedBackend
from vhs.protocol import BackendError, Limits, Reply, Request, open_rgb

DEFAULT_MODEL = "llava-hf/llava-1.5-7b-hf"
CUDA_BATCH = 8  # haystacks per generate call on a GPU by default: our choice, not measured; ?batch_size= lowers it


def context_window(config: Any) -> int | None:
    """The text model's maximum positions, from a (multimodal or text) transformers config."""
    text = getattr(config, "text_config", None) or config
    return getattr(text, "max_position_embeddings", None)


def weights_revision(model_id: str, config: Any) -> str:
    """What identifies the weights: the hub commit they were downloaded at, or for a local directory a hash of its
    weight files' names, sizes and modification times (a changed file is a new model; a copied one only re-asks)."""
    folder = Path(model_id)
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".gguf"))
        listing = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        return "local:" + hashlib.sha256(repr(listing).encode()).hexdigest()[:16]
    return getattr(config, "_commit_hash", None) or "unknown"


class HFBackend(BatchedBackend):
    """A transformers model answering in batches; images first, then the prompt, greedy decoding."""

    name = "hf"

    def __init__(
        self,
        model_id: str = "",
        dtype: str = "auto",
        device: str = "auto",
        max_new_tokens: str = "8",
        batch_size: str = "auto",
        context: str = "",
        device_map: str = "",
    ) -> None:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

        model_id = model_id or DEFAULT_MODEL
        self.device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, self.device)
        try:
            config = AutoConfig.from_pretrained(model_id)
            super().__init__(
                model_id,
                dtype=str(torch_dtype).removeprefix("torch."),
                max_new_tokens=int(max_new_tokens),
                weights=weights_revision(model_id, config),
            )
            self.vision = getattr(config, "vision_config", None) is not None
            loader = AutoModelForImageTextToText if self.vision else AutoModelForCausalLM
            if device_map:  # accelerate places the layers over every GPU (and the CPU) that it needs
                self.model = loader.from_pretrained(model_id, dtype=torch_dtype, device_map=device_map).eval()
                self.device = str(self.model.device)  # where the inputs go: the first layer's device
            else:
                self.model = loader.from_pretrained(model_id, dtype=torch_dtype).to(self.device).eval()
            self.processor = (AutoProcessor if self.vision else AutoTokenizer).from_pretrained(model_id)
        except OSError as exc:
            raise BackendError(f"cannot load {model_id!r}: {str(exc).splitlines()[0]}") from None
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"  # generation continues every row from its last real token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = (CUDA_BATCH if self.device.startswith("cuda") else 1) if batch_size == "auto" else int(batch_size)
        self._per_image: dict[tuple[int, int], int] = {}
        self.limits = Limits(context_tokens=int(context) if context else context_window(config))

    def chat(self, prompt: str, images: int) -> str:
        """The templated text: `images` image placeholders first, then the prompt, then the assistant turn."""
        content: list[dict] | str = (
            [*({"type": "image"} for _ in range(images)), {"type": "text", "text": prompt}] if self.vision else prompt
        )
        if self.processor.chat_template is None:
            raise BackendError(f"{self.model_id} has no chat template; give a model with one")
        return self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )

    def _text_tokens(self, text: str) -> int:
        # a processor adds the BOS itself; a text model's chat template already holds it
        return len(self.tokenizer(text, add_special_tokens=self.vision)["input_ids"])

    def tokens_per_image(self, size: tuple[int, int]) -> int:
        """How many tokens one image of this size takes, measured once per size through the processor."""
        if size not in self._per_image:
            text = self.chat("", 1)
            expanded = self.processor(text=[text], images=[Image.new("RGB", size)], return_tensors="pt")["input_ids"].shape[1]
            self._per_image[size] = expanded - self._text_tokens(text) + 1
        return self._per_image[size]

    def prompt_tokens(self, request: Request) -> int:
        """Prompt tokens with every image expanded, computed from image sizes without decoding pixels."""
        text = self.chat(request.prompt, len(request.images))
        images = 0
        for image in request.images:
            with Image.open(image.path) as opened:
                images += self.tokens_per_image(opened.size) - 1
        return self._text_tokens(text) + images

    @torch.no_grad()
    def generate_batch(self, requests: list[Request]) -> list[Reply]:
        """One padded `generate` call for the batch (the runner has already set over-context haystacks aside)."""
        texts = [self.chat(r.prompt, len(r.images)) for r in requests]
        if self.vision:
            images = [open_rgb(i.path) for r in requests for i in r.images]
            inputs = self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)
        else:
            inputs = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        inputs = inputs.to(self.device)
        output = self.model.generate(
            **inputs, max_new_tokens=self.params["max_new_tokens"], do_sample=False, pad_token_id=self.tokenizer.pad_token_id
        )
        new = output[:, inputs["input_ids"].shape[1] :]
        replies = []
        cap = self.params["max_new_tokens"]
        for row, request in enumerate(requests):
            generated = new[row][new[row] != self.tokenizer.pad_token_id]
            ended = bool((generated == self.tokenizer.eos_token_id).any()) or len(generated) < cap
            replies.append(
                Reply(
                    text=self.tokenizer.decode(generated, skip_special_tokens=True).strip(),
                    input_tokens=int(inputs["attention_mask"][row].sum()),
                    output_tokens=len(generated),
                    images_sent=len(request.images),
                    stop_reason="stop" if ended else "length",
                )
            )
        return replies
