"""The models trained here, one declaration each: what `vhs train`, `make models`, the registry and the book read.

A model's trainer and checkpoint class are named as `module:attribute` (like the backend registry), so
this table sits below everything that uses it and imports nothing. A trainer is called as
`trainer(base, catalog, steps, seed, **options)` (`base`, the loaded checkpoint it builds on, only where
there is one) and returns
`(model, curves)`; its keyword defaults are the hyperparameters `vhs train` records in the checkpoint.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainedModel:
    """One model trained here (or, with no trainer, one assembled from others' checkpoints).

    `spec` is the backend spec that evaluates it, `{runs}` standing for the checkpoints' root (None: a
    component other models build on, not evaluated alone); `coco` is its counterpart on the coco profile,
    a (label, spec) pair whose spec is None where nothing stands for it yet.
    """

    name: str
    summary: str
    trainer: str | None = None
    checkpoint: str | None = None
    builds_on: str | None = None
    steps: int = 0
    options: dict[str, str] = field(default_factory=dict)
    spec: str | None = None
    coco: tuple[str, str | None] | None = None


MODELS: dict[str, TrainedModel] = {
    model.name: model
    for model in (
        TrainedModel(
            "synth-clip",
            "the image encoder and its CLIP-style text alignment, the vision tower of every other synth model",
            trainer="vhs.synth_models.clip:train_clip",
            checkpoint="vhs.synth_models.clip:Clip",
            steps=800,  # encoder steps; the alignment then runs half as many
        ),
        TrainedModel(
            "synth-captioner",
            "per-image captions from the frozen encoder",
            trainer="vhs.synth_models.captioner:train_captioner",
            checkpoint="vhs.synth_models.captioner:Captioner",
            builds_on="synth-clip",
            steps=100,
        ),
        TrainedModel(
            "synth-caption",
            "the caption-then-LLM baseline: the captioner and a tiny LM reading the numbered captions",
            trainer="vhs.synth_models.caption_lm:train_caption_lm",
            checkpoint="vhs.synth_models.caption_lm:SynthCaptionLM",
            builds_on="synth-captioner",
            steps=400,
            spec="synth-caption:{runs}/synth-caption",
            coco=("Caption (LLaVA + Llama-3)", "caption:llava-hf/llava-1.5-7b-hf"),
        ),
        TrainedModel(
            "synth-llava",
            "a LLaVA-style full-context reader: projected patches of every image, then the question",
            trainer="vhs.synth_models.llava:train_llava",
            checkpoint="vhs.synth_models.llava:SynthLlava",
            builds_on="synth-caption",
            steps=250,  # answer steps, after 8x as many alignment steps
            spec="synth-llava:{runs}/synth-llava",
            # trained with 2,048 tokens: about 3 images, as synth-llava's 256-token window
            coco=("LLaVA-v1.5-7B", "hf:llava-hf/llava-1.5-7b-hf?context=2048"),
        ),
        TrainedModel(
            "clip-retrieve",
            "synth-clip ranking the haystack by the anchor's name, synth-llava answering on the top k",
            spec="clip-retrieve:{runs}/synth-clip?reader={runs}/synth-llava",
            # CLIP (downloaded on first use) ranking COCO images, LLaVA-1.5 answering on the top k
            coco=("CLIP-L/14-336 + LLaVA", "clip-retrieve:openai/clip-vit-large-patch14-336?reader=hf:llava-hf/llava-1.5-7b-hf"),
        ),
        TrainedModel(
            "mirage",
            "MIRAGE as released: image-only compression, a retriever, the LM over the kept images",
            trainer="vhs.mirage.train:train_mirage",
            checkpoint="vhs.mirage.model:Mirage",
            builds_on="synth-caption",
            steps=1500,
            options={"compression": "image"},
            spec="mirage:{runs}/mirage",
            coco=("MIRAGE-8.3B", "mirage-official"),  # the released checkpoint (`vhs data mirage-official`)
        ),
        TrainedModel(
            "mirage-query",
            "MIRAGE with query-aware compression (the compressor also reads the question)",
            trainer="vhs.mirage.train:train_mirage",
            checkpoint="vhs.mirage.model:Mirage",
            builds_on="synth-caption",
            steps=1500,
            options={"compression": "query"},
            spec="mirage:{runs}/mirage-query",
            coco=("MIRAGE (query-aware)", "mirage:{runs}/coco-mirage-query"),
        ),
    )
}


def trained() -> tuple[TrainedModel, ...]:
    """The models `vhs train` trains, each after the one it builds on (the table's order)."""
    return tuple(model for model in MODELS.values() if model.trainer)


def evaluated() -> tuple[TrainedModel, ...]:
    """The models the book evaluates (those with a backend spec)."""
    return tuple(model for model in MODELS.values() if model.spec)
