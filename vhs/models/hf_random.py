"""Randomly initialised transformers checkpoints built locally: LLaVA-style, text-only Llama, a CLIP vision tower.

Tests and benchmarks use them to run the real `hf` and `caption` backends through `from_pretrained`
with nothing downloaded: a byte-level BPE tokenizer trained here on the prompt vocabulary, a CLIP
image processor, LLaVA-1.5's chat format, and weights of any size (`TINY` for tests, `LLAVA_15_7B`
for a speed measurement at the paper's exact configuration).
"""

from dataclasses import dataclass
from pathlib import Path

import torch

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN]
# LLaVA-1.5's conversation format: USER: <image>\n<image>\n{prompt} ASSISTANT:
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image>\n{% endif %}{% endfor %}"
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% else %}{{ message['content'] }}{% endif %} {% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
TEXT_CHAT_TEMPLATE = (
    "<s>{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)
_CORPUS = [
    "You are given a set of images. Please answer the following question in Yes or No:",
    "For the image with a person, is there a dog? For all images with an apple, do all of them contain a cup?",
    "do any of them contain Yes No yes no Image 1: 2: 3: 4: 5: 6: 7: 8: 9: 0 a photo of a red circle, blue star, ",
    "Describe the objects in this image. The image shows USER: ASSISTANT: user: assistant:",
]


@dataclass(frozen=True)
class Sizes:
    """Model sizes: the text model, the vision tower, the image resolution and the context window."""

    width: int = 32
    layers: int = 2
    heads: int = 2
    vocab: int = 0  # 0: the tokenizer's own size
    context: int = 128
    vision_width: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    image_size: int = 28
    patch_size: int = 14


TINY = Sizes()
LLAVA_15_7B = Sizes(4096, 32, 32, 32064, 4096, 1024, 24, 16, 336, 14)  # llava-hf/llava-1.5-7b-hf


def _tokenizer(chat_template: str | None, bos: bool = False):
    """A byte-level BPE tokenizer trained on the prompt vocabulary; `bos`: it prefixes `<s>`, as Llama-3's does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        _CORPUS,
        trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()),
    )
    if bos:
        bpe.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bpe.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>", chat_template=chat_template
    )


def _llama_config(sizes: Sizes, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=sizes.vocab or len(tokenizer),
        hidden_size=sizes.width,
        intermediate_size=sizes.width * 11 // 4,
        num_hidden_layers=sizes.layers,
        num_attention_heads=sizes.heads,
        num_key_value_heads=sizes.heads,
        max_position_embeddings=sizes.context,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _vision_config(sizes: Sizes):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=sizes.vision_width,
        intermediate_size=sizes.vision_width * 4,
        num_hidden_layers=sizes.vision_layers,
        num_attention_heads=sizes.vision_heads,
        image_size=sizes.image_size,
        patch_size=sizes.patch_size,
        projection_dim=sizes.vision_width,
    )


def _image_processor(sizes: Sizes):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(
        size={"shortest_edge": sizes.image_size}, crop_size={"height": sizes.image_size, "width": sizes.image_size}
    )


def write_clip_vision(directory: Path, sizes: Sizes = TINY, seed: int = 0) -> Path:
    """Save a random CLIP vision tower with its image processor to `directory` (MIRAGE's coco encoder, tiny)."""
    from transformers import CLIPVisionModel

    torch.manual_seed(seed)
    CLIPVisionModel(_vision_config(sizes)).save_pretrained(directory)
    _image_processor(sizes).save_pretrained(directory)
    return Path(directory)


def write_clip(directory: Path, sizes: Sizes = TINY, seed: int = 0) -> Path:
    """Save a random CLIP, text tower included, with its tokenizer and image processor to `directory`: what
    `openai/clip-vit-large-patch14-336` is to clip-retrieve, and (its vision tower) to the released MIRAGE."""
    from transformers import CLIPConfig, CLIPModel

    tokenizer = _tokenizer(None)
    vision = _vision_config(sizes)
    text = {"vocab_size": len(tokenizer), "hidden_size": sizes.vision_width, "intermediate_size": 4 * sizes.vision_width}
    text |= {"num_hidden_layers": sizes.vision_layers, "num_attention_heads": sizes.vision_heads, "max_position_embeddings": 77}
    text |= {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    config = CLIPConfig(text_config=text, vision_config=vision.to_dict(), projection_dim=sizes.vision_width)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    _image_processor(sizes).save_pretrained(directory)
    return Path(directory)


def write_llava(directory: Path, sizes: Sizes = TINY, seed: int = 0, dtype: torch.dtype = torch.float32) -> Path:
    """Save a random LLaVA-1.5-style model (CLIP tower, Llama LM) with its processor to `directory`."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tokenizer = _tokenizer(LLAVA_CHAT_TEMPLATE)
    vision = _vision_config(sizes)
    config = LlavaConfig(
        vision_config=vision,
        text_config=_llama_config(sizes, tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        image_seq_length=(sizes.image_size // sizes.patch_size) ** 2,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).to(dtype).save_pretrained(directory)
    processor = LlavaProcessor(
        image_processor=_image_processor(sizes),
        tokenizer=tokenizer,
        patch_size=sizes.patch_size,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
    )
    processor.save_pretrained(directory)
    return Path(directory)


def write_text_lm(directory: Path, sizes: Sizes = TINY, seed: int = 0) -> Path:
    """Save a random text-only Llama with its tokenizer (chat template included) to `directory`."""
    from transformers import LlamaForCausalLM

    tokenizer = _tokenizer(TEXT_CHAT_TEMPLATE)
    torch.manual_seed(seed)
    LlamaForCausalLM(_llama_config(sizes, tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return Path(directory)


# Config keys the released MIRAGE-8.3B checkpoint carries beside Llama's that our loader does not read (its
# training flags; `qformer_num_attn_heads` is saved but the official Q-Former reads `qformer_num_attention_heads`).
RELEASED_FLAGS = {
    "architectures": ["LlavaLlamaForCausalLM"],
    "mm_qformer": True,
    "mm_retriever": True,
    "mm_reduce_token_method": "qformer_query_aware",
    "mm_patch_merge_type": "flat",
    "mm_use_im_start_end": False,
    "mm_use_im_patch_token": False,
    "use_mm_proj": True,
    "qformer_num_attn_heads": 12,
    "qformer_max_position_embeddings": 1024,
    "tokenizer_model_max_length": 2048,
    "tokenizer_padding_side": "right",
}


# The released MIRAGE-8.3B's sizes: Llama-3.1-8B and CLIP ViT-L/14-336; its config keys `Sizes` does not derive
# (Llama-3.1's MLP width and grouped KV heads). The Q-Former and retriever keep the official defaults.
MIRAGE_8B = Sizes(4096, 32, 32, 128256, 8192, 1024, 24, 16, 336, 14)
MIRAGE_8B_CONFIG = {"intermediate_size": 14336, "num_key_value_heads": 8}


def _small_parts(sizes: Sizes) -> dict:
    """The Q-Former (4 queries) and retriever (2 layers) scaled down to `sizes`, for tests."""
    return {
        "qformer_hidden_size": sizes.vision_width,
        "qformer_num_attention_heads": sizes.vision_heads,
        "qformer_encoder_hidden_size": sizes.vision_width,
        "qformer_intermediate_size": sizes.vision_width,
        "qformer_num_query_tokens": 4,
        "retriever_layers": 2,
        "retriever_heads": 2,
        "retriever_feedforward": 2 * sizes.width,
    }


def write_official_mirage(
    directory: Path,
    vision: Path,
    sizes: Sizes = TINY,
    config: dict | None = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Save a random MIRAGE in the released checkpoint's layout (`vhs.mirage.official`): config keys and
    parameter names as released, the retriever's unused template layer included, CLIP named by path
    (`write_clip_vision`), a tokenizer that adds BOS. `config` sets keys over those derived from `sizes`;
    None scales the Q-Former and retriever down too (`MIRAGE_8B` with `MIRAGE_8B_CONFIG`: the released sizes)."""
    from safetensors.torch import save_file

    from vhs.mirage.official import OfficialMirageConfig, OfficialMirageForCausalLM

    tokenizer = _tokenizer(None, bos=True)
    llama = _llama_config(sizes, tokenizer).to_dict()
    for key in ("model_type", "transformers_version", "architectures"):
        llama.pop(key, None)
    keys = llama | RELEASED_FLAGS | {"mm_vision_tower": str(vision), "mm_hidden_size": sizes.vision_width}
    model_config = OfficialMirageConfig(**keys | (_small_parts(sizes) if config is None else config))
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in `dtype`: the released size in float32 would take 36 GB
    try:
        model = OfficialMirageForCausalLM(model_config)
    finally:
        torch.set_default_dtype(default)
    if config is None:
        trained = (model.model.qformer, model.model.mm_projector, model.model.retriever)
        for parameter in (p for part in trained for p in part.parameters() if p.dim() > 1):
            torch.nn.init.normal_(parameter, std=0.2)  # so that images differ: at init scale every image scores alike
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    template = "model.retriever.transformer_encoder.layers.0."
    state |= {
        k.replace(template, "model.retriever.encoder_layer."): v.clone() for k, v in state.items() if k.startswith(template)
    }
    directory = Path(directory)
    model_config.save_pretrained(directory)
    save_file(state, directory / "model.safetensors", metadata={"format": "pt"})
    tokenizer.save_pretrained(directory)
    return directory
