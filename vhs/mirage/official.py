"""The released MIRAGE-8.3B (`tsunghanwu/mirage-llama3.1-8.3B`), rebuilt here around its checkpoint as released.

The release is one merged LLaVA-style checkpoint (`model_type` "llava_llama"): Llama-3.1-8B-Instruct
with the trained parts inside its `model.` prefix, CLIP named in the config and loaded from its own
weights. Names, shapes and config keys follow the official code (`visual-haystacks/mirage`):

- `model.qformer`: 32 learned queries (`query_tokens.weight.weight`) and a BLIP-2 Q-Former
  (`qformer.*`, transformers' `Blip2QFormerModel`: hidden 1024, 4 layers, cross-attention every
  second layer) over CLIP ViT-L/14-336's second-to-last layer without CLS. It sees the image only.
- `model.mm_projector`: `mlp2x_gelu`, the Q-Former width into the LM's.
- `model.retriever`: a 12-layer `nn.TransformerEncoder` (8 heads, feed-forward 2048) over
  [an image's 32 projected tokens ; `text_projector`(the LM's embeddings of the prompt)] plus learned
  positions, mean-pooled, one sigmoid score per image.

The official code builds its Q-Former with `qformer_num_attention_heads` (default 8) while its training
script saves `qformer_num_attn_heads`; like the official code, the former is read. The checkpoint's copy
of the retriever's template layer (`retriever.encoder_layer`, which `nn.TransformerEncoder` clones and
never runs) and any copy of CLIP are not loaded, as the official loader does not load them; every other
key must match exactly (`StrictLoadError`), so a misnamed part cannot load silently with random weights.

At inference, as `llava/eval/model_vqa_vhs.py` does: images are padded to a square of the processor's
mean colour; the retriever reads the official prompt with the question, tokenized with BOS; images are
scored 200 at a time with their tokens kept off the GPU; an image is kept by the official rule (the best
one if none scores >= 0.5, else the top 1 for a single needle, 3 for several); the kept images' tokens
stand where their `<image>` was in the `llama3` conversation of the official code, the others are dropped,
and the answer is greedy.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
from PIL import Image
from torch import nn
from transformers import Blip2QFormerConfig, Blip2QFormerModel, LlamaConfig, LlamaForCausalLM

from vhs.data.questions import PROMPT_PREFIX
from vhs.data.released import MIRAGE_REPO
from vhs.devices import resolve_device, resolve_dtype
from vhs.errors import VhsError
from vhs.mirage.retriever import select
from vhs.protocol import open_rgb

CHUNK = 200  # images scored per pass, as the official `batch_generate`
# The official `llama3` conversation (`llava/conversation.py`): Vicuna-style text, not Llama-3's own template.
SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
IMAGE = "<image>"
# Keys of the checkpoint the official loader leaves unused: the retriever's template layer and CLIP's copy.
UNUSED_KEYS = (r"^model\.retriever\.encoder_layer\.", r"^model\.vision_tower\.")


class StrictLoadError(VhsError):
    """The checkpoint's keys and ours differ: a part would load with random weights."""


class OfficialMirageConfig(LlamaConfig):
    """The released config: Llama-3.1's keys plus the LLaVA ones the official code reads (defaults: the
    official code's). The retriever's sizes are constants there; here they are keys with those defaults."""

    model_type = "llava_llama"

    def __init__(
        self,
        mm_vision_tower: str = "openai/clip-vit-large-patch14-336",
        mm_hidden_size: int = 1024,
        mm_vision_select_layer: int = -2,
        mm_vision_select_feature: str = "patch",
        mm_projector_type: str = "mlp2x_gelu",
        image_aspect_ratio: str = "pad",
        qformer_hidden_size: int = 1024,
        qformer_num_attention_heads: int = 8,
        qformer_num_layers: int = 4,
        qformer_encoder_hidden_size: int = 1024,
        qformer_intermediate_size: int = 1024,
        qformer_num_query_tokens: int = 32,
        retriever_layers: int = 12,
        retriever_heads: int = 8,
        retriever_feedforward: int = 2048,
        retriever_positions: int = 5000,
        **llama: object,
    ) -> None:
        self.mm_vision_tower = mm_vision_tower
        self.mm_hidden_size = mm_hidden_size
        self.mm_vision_select_layer = mm_vision_select_layer
        self.mm_vision_select_feature = mm_vision_select_feature
        self.mm_projector_type = mm_projector_type
        self.image_aspect_ratio = image_aspect_ratio
        self.qformer_hidden_size = qformer_hidden_size
        self.qformer_num_attention_heads = qformer_num_attention_heads
        self.qformer_num_layers = qformer_num_layers
        self.qformer_encoder_hidden_size = qformer_encoder_hidden_size
        self.qformer_intermediate_size = qformer_intermediate_size
        self.qformer_num_query_tokens = qformer_num_query_tokens
        self.retriever_layers = retriever_layers
        self.retriever_heads = retriever_heads
        self.retriever_feedforward = retriever_feedforward
        self.retriever_positions = retriever_positions
        super().__init__(**llama)


class ReleasedQFormer(nn.Module):
    """Learned queries cross-attending to one image's CLIP patches: (N, patches, width) -> (N, queries, hidden)."""

    def __init__(self, config: OfficialMirageConfig) -> None:
        super().__init__()
        self.query_tokens = nn.ModuleDict({"weight": nn.Embedding(config.qformer_num_query_tokens, config.qformer_hidden_size)})
        self.qformer = Blip2QFormerModel(
            Blip2QFormerConfig(
                hidden_size=config.qformer_hidden_size,
                num_attention_heads=config.qformer_num_attention_heads,
                num_hidden_layers=config.qformer_num_layers,
                encoder_hidden_size=config.qformer_encoder_hidden_size,
                intermediate_size=config.qformer_intermediate_size,
            )
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Every image's patches -> its query outputs."""
        queries = self.query_tokens["weight"].weight.unsqueeze(0).expand(len(features), -1, -1)
        mask = torch.ones(features.shape[:2], dtype=torch.long, device=features.device)
        return self.qformer(query_embeds=queries, encoder_hidden_states=features, encoder_attention_mask=mask).last_hidden_state


class ReleasedRetriever(nn.Module):
    """Each image scored alone from its tokens and the prompt's projected embeddings: a probability per image."""

    def __init__(self, config: OfficialMirageConfig) -> None:
        super().__init__()
        width = config.hidden_size
        layer = nn.TransformerEncoderLayer(width, config.retriever_heads, config.retriever_feedforward, 0.1, batch_first=True)
        self.transformer_encoder = nn.TransformerEncoder(layer, config.retriever_layers, enable_nested_tensor=False)
        self.output_layer = nn.Linear(width, 1)
        self.pos_encoder = nn.ParameterDict({"positional_encoding": nn.Parameter(torch.zeros(config.retriever_positions, width))})
        self.text_projector = nn.Linear(width, width)

    def forward(self, tokens: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """(N, K, width) image tokens and the (T, width) projected prompt -> (N,) probabilities."""
        x = torch.cat([tokens, prompt.unsqueeze(0).expand(len(tokens), -1, -1)], dim=1)
        x = x + self.pos_encoder["positional_encoding"][: x.shape[1]]
        return torch.sigmoid(self.output_layer(self.transformer_encoder(x).mean(dim=1))).squeeze(-1)


class OfficialMirageForCausalLM(LlamaForCausalLM):
    """Llama with the released trained parts inside `model.`: what `from_pretrained` fills from the checkpoint."""

    config_class = OfficialMirageConfig
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = list(UNUSED_KEYS)

    def __init__(self, config: OfficialMirageConfig) -> None:
        super().__init__(config)
        if config.mm_projector_type != "mlp2x_gelu":
            raise VhsError(f"projector {config.mm_projector_type!r}: the released MIRAGE uses mlp2x_gelu")
        width = config.hidden_size
        self.model.qformer = ReleasedQFormer(config)
        self.model.mm_projector = nn.Sequential(nn.Linear(config.mm_hidden_size, width), nn.GELU(), nn.Linear(width, width))
        self.model.retriever = ReleasedRetriever(config)
        self.post_init()


def load_strictly(path: str, dtype: torch.dtype) -> OfficialMirageForCausalLM:
    """The checkpoint at `path` (a hub id, downloaded on first use, or a folder) through transformers'
    `from_pretrained`; a key missing on either side or a shape that differs is a one-line `StrictLoadError`."""
    try:
        # A shape that differs is reported in `info` (and raised below as ours) rather than as transformers' error.
        model, info = OfficialMirageForCausalLM.from_pretrained(
            path, dtype=dtype, output_loading_info=True, ignore_mismatched_sizes=True
        )
    except OSError as exc:
        hint = "" if Path(path).is_dir() else " (`vhs data mirage-official` downloads it)"
        raise VhsError(f"cannot load MIRAGE from {path!r}: {str(exc).splitlines()[0]}{hint}") from None
    for problem in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        keys = sorted(str(k) for k in info.get(problem) or ())
        if keys:
            raise StrictLoadError(f"{path}: {len(keys)} {problem.replace('_', ' ')} in the checkpoint, e.g. {keys[0]}")
    return model


def pad_to_square(image: Image.Image, mean: Sequence[float]) -> Image.Image:
    """The image centred on a square of the processor's mean colour (LLaVA's `image_aspect_ratio: pad`)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), tuple(int(m * 255) for m in mean))
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


class ReleasedMirage:
    """The released model at inference: image tokens, retriever scores, the answer over the kept images."""

    def __init__(self, path: str = MIRAGE_REPO, device: str = "auto", dtype: str = "auto") -> None:
        from transformers import CLIPImageProcessor, CLIPVisionModel, PreTrainedTokenizerFast

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.lm = load_strictly(path, self.dtype).to(self.device).eval()
        self.config: OfficialMirageConfig = self.lm.config
        try:
            self.tokenizer = PreTrainedTokenizerFast.from_pretrained(path)  # Llama-3's; AutoTokenizer would misread the config
            tower = self.config.mm_vision_tower
            self.vision = CLIPVisionModel.from_pretrained(tower, dtype=self.dtype).to(self.device).eval()
            self.processor = CLIPImageProcessor.from_pretrained(tower)
        except OSError as exc:
            raise VhsError(f"cannot load MIRAGE's tokenizer or CLIP: {str(exc).splitlines()[0]}") from None
        if self.config.mm_vision_select_feature != "patch":
            raise VhsError(f"vision feature {self.config.mm_vision_select_feature!r}: the released MIRAGE uses patch")

    @property
    def queries(self) -> int:
        """Tokens one kept image takes in the LM's context."""
        return self.config.qformer_num_query_tokens

    @torch.no_grad()
    def image_tokens(self, paths: Sequence[Path]) -> torch.Tensor:
        """Image files -> (N, queries, LM width) projected Q-Former tokens, on the CPU in float16."""
        images = [open_rgb(path) for path in paths]
        if self.config.image_aspect_ratio == "pad":
            images = [pad_to_square(image, self.processor.image_mean) for image in images]
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"].to(self.device, self.dtype)
        hidden = self.vision(pixels, output_hidden_states=True).hidden_states[self.config.mm_vision_select_layer][:, 1:]
        return self.lm.model.mm_projector(self.lm.model.qformer(hidden)).to("cpu", torch.float16)

    def _embed(self, ids: list[int]) -> torch.Tensor:
        return self.lm.get_input_embeddings()(torch.tensor(ids, device=self.device))

    @torch.no_grad()
    def scores(self, tokens: torch.Tensor, question: str) -> torch.Tensor:
        """(N, queries, width) tokens of a haystack -> (N,) probabilities, `CHUNK` images on the device at a time."""
        retriever = self.lm.model.retriever
        prompt = retriever.text_projector(self._embed(self.tokenizer(PROMPT_PREFIX + question)["input_ids"]))
        parts = [retriever(tokens[s : s + CHUNK].to(self.device, self.dtype), prompt) for s in range(0, len(tokens), CHUNK)]
        return torch.cat(parts).float().cpu()

    def frame_ids(self, question: str) -> tuple[list[int], list[int]]:
        """The conversation's tokens before the images and after them (BOS once, at the start)."""
        before = self.tokenizer(f"{SYSTEM} USER: ")["input_ids"]
        after = self.tokenizer(f"\n{PROMPT_PREFIX}{question} ASSISTANT:")["input_ids"]
        if before and before[0] == self.tokenizer.bos_token_id:  # the official splicing drops each later chunk's BOS
            after = after[1:]
        return before, after

    def lm_tokens(self, images: int, question: str) -> int:
        """The LM's input length with `images` kept images."""
        before, after = self.frame_ids(question)
        return len(before) + images * self.queries + len(after)

    @torch.no_grad()
    def answer(self, tokens: torch.Tensor, question: str, keep: int, max_new_tokens: int) -> tuple[list[int], list[int]]:
        """A haystack's tokens -> (the kept haystack positions, the answer's token ids), greedy."""
        kept = select(self.scores(tokens, question), keep)
        before, after = self.frame_ids(question)
        images = tokens[kept].to(self.device, self.dtype).reshape(-1, tokens.shape[-1])
        embeds = torch.cat([self._embed(before), images, self._embed(after)]).unsqueeze(0)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        output = self.lm.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=self.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )
        return kept, output[0].tolist()


def _weights_patterns(repo: str, revision: str | None) -> list[str]:
    """What to download of a hub model: its JSON and tokenizer files and one weights format (safetensors if any)."""
    from huggingface_hub import HfApi

    files = HfApi().list_repo_files(repo, revision=revision)
    weights = "*.safetensors" if any(f.endswith(".safetensors") for f in files) else "*.bin"
    return ["*.json", "*.txt", "*.model", "*.tiktoken", weights]


def _download(repo: str, revision: str | None = None) -> Path:
    """A hub model's snapshot folder in the Hub's cache, downloaded where missing; a local folder as it is."""
    from huggingface_hub import snapshot_download

    if Path(repo).is_dir():
        return Path(repo)
    return Path(snapshot_download(repo, revision=revision, allow_patterns=_weights_patterns(repo, revision)))


def fetch_weights(model_id: str = MIRAGE_REPO, revision: str | None = None) -> tuple[Path, Path]:
    """Download the released checkpoint and the CLIP its config names into the Hub's cache (resumable);
    returns their folders."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        checkpoint = _download(model_id, revision)
        return checkpoint, _download(OfficialMirageConfig.from_pretrained(checkpoint).mm_vision_tower)
    except HfHubHTTPError as exc:
        raise VhsError(f"cannot fetch MIRAGE's weights: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise VhsError(f"download of MIRAGE's weights interrupted ({exc}); run the command again to resume") from None


def missing_weights(model_id: str = MIRAGE_REPO) -> str | None:
    """Why the released MIRAGE cannot run from what is on this machine (None: it can), without downloading:
    the checkpoint (a folder, or the Hub's cache) and the CLIP it names must both be present."""
    from huggingface_hub import snapshot_download

    def present(repo: str) -> Path | None:
        if Path(repo).is_dir():
            return Path(repo)
        try:
            return Path(snapshot_download(repo, local_files_only=True))
        except OSError:  # LocalEntryNotFoundError: not in the cache
            return None

    checkpoint = present(model_id)
    if checkpoint is None or not (checkpoint / "config.json").is_file():
        return f"weights absent: {model_id} is not downloaded (`vhs data mirage-official` on a GPU box)"
    tower = OfficialMirageConfig.from_pretrained(checkpoint).mm_vision_tower
    if present(tower) is None:
        return f"weights absent: its CLIP {tower} is not downloaded (`vhs data mirage-official`)"
    return None
