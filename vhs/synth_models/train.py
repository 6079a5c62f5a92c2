"""`vhs train NAME`: train one synth model, finding the model it builds on beside its output directory.

synth-clip (encoder pair) <- synth-captioner <- synth-caption <- synth-llava (its encoder and LM);
mirage (image-only compression, as released) and mirage-query (query-aware) also build on
synth-caption. clip-retrieve needs no training of its own: it pairs synth-clip with synth-llava.
`vhs train mirage --profile coco` (or mirage-query) trains the coco MIRAGE instead: CLIP and a hub
LM, frozen, with the parts between them trained on COCO train2017 (a GPU box's job).
"""

import time
from dataclasses import replace
from pathlib import Path

from vhs.data.catalog import Catalog
from vhs.data.profiles import coco_training_catalog
from vhs.errors import VhsError
from vhs.mirage.hub import HubMirageConfig
from vhs.mirage.train import train_hub_mirage, train_mirage
from vhs.synth_models.caption_lm import SynthCaptionLM, train_caption_lm
from vhs.synth_models.captioner import Captioner, train_captioner
from vhs.synth_models.clip import Clip, train_clip
from vhs.synth_models.data import SYNTH_TRAIN, training_catalog
from vhs.synth_models.llava import train_llava

# synth-clip counts encoder steps (then half as many alignment steps), synth-llava answer steps (after
# 8x as many alignment steps); the four synth models train in 233-288 s on 2 cores (README, "Measured").
DEFAULT_STEPS = {"synth-clip": 800, "synth-captioner": 100, "synth-llava": 250, "synth-caption": 400, "mirage": 1500, "mirage-query": 1500}
BUILDS_ON = {
    "synth-captioner": "synth-clip", "synth-caption": "synth-captioner", "synth-llava": "synth-caption",
    "mirage": "synth-caption", "mirage-query": "synth-caption",
}
MODELS = tuple(DEFAULT_STEPS)
COCO_MIRAGE_STEPS = 10_000  # batches of 16 samples: 160,000 samples, 13% of the official instruction data
LOADERS = {"synth-clip": Clip, "synth-captioner": Captioner, "synth-caption": SynthCaptionLM}


def _base(name: str, out: Path) -> Clip | Captioner | SynthCaptionLM:
    needed = BUILDS_ON[name]
    path = out.parent / needed
    loader = LOADERS[needed]
    if not (path / "config.json").exists():
        raise VhsError(f"{name} builds on {needed}, not found at {path} (run `vhs train {needed} --out {path}` first)")
    return loader.from_pretrained(path)


def train_model(
    name: str, out: Path, steps: int | None = None, seed: int = 0, catalog: Catalog | None = None, profile: str = "synth", hub: HubMirageConfig | None = None,
) -> Path:
    """Train `name` on the synth training split (or `catalog`) and save it to `out`; return `out`.

    On the coco profile only MIRAGE trains here: CLIP + a hub LM (`hub`, default `HubMirageConfig()`)
    on COCO train2017 (`train_hub_mirage`).
    """
    if name not in DEFAULT_STEPS:
        raise VhsError(f"unknown model {name!r} to train; use one of {', '.join(MODELS)}")
    if profile != "synth" and not name.startswith("mirage"):
        raise VhsError(f"only mirage and mirage-query train on the {profile} profile; {name} loads downloaded weights there")
    out = Path(out)
    compression = "query" if name == "mirage-query" else "image"
    if profile != "synth":
        steps = steps or COCO_MIRAGE_STEPS
        catalog = catalog or coco_training_catalog()
        split: dict | str = "COCO train2017"
    else:
        steps = steps or DEFAULT_STEPS[name]
        catalog = catalog or training_catalog()
        split = {"images": SYNTH_TRAIN.images, "seed": SYNTH_TRAIN.seed}
    base = _base(name, out) if name in BUILDS_ON and profile == "synth" else None
    start = time.perf_counter()
    if profile != "synth":
        model, curves = train_hub_mirage(catalog, steps, seed, replace(hub or HubMirageConfig(), compression=compression))
    elif name == "synth-clip":
        model, curves = train_clip(catalog, steps, seed)
    elif name == "synth-captioner":
        model, curves = train_captioner(base, catalog, steps, seed)
    elif name == "synth-llava":
        model, curves = train_llava(base, catalog, steps, seed)
    elif name.startswith("mirage"):
        model, curves = train_mirage(base, catalog, steps, seed, compression=compression)
    else:
        model, curves = train_caption_lm(base, catalog, steps, seed)
    facts = {"steps": steps, "seed": seed, "seconds": round(time.perf_counter() - start, 1), "train_split": split}
    model.save_pretrained(out, curves, extra={"training": facts})
    return out
