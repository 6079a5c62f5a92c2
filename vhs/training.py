"""`vhs train NAME` and `vhs train --all`: train the models declared in `vhs.zoo`, each finding the model it
builds on beside its output directory.

`vhs train mirage --profile coco` (or mirage-query) trains the coco MIRAGE instead: CLIP and a hub LM,
frozen, with the parts between them trained on COCO train2017 (a GPU box's job).
"""

import ast
import importlib
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from vhs.data.catalog import Catalog
from vhs.data.profiles import coco_training_catalog
from vhs.errors import VhsError
from vhs.mirage.hub import HubMirageConfig
from vhs.mirage.train import train_hub_mirage
from vhs.parallel import current
from vhs.paths import write_atomically
from vhs.synth_models import fit as fit_module
from vhs.synth_models.data import SYNTH_TRAIN, training_catalog
from vhs.synth_models.inference import weights_digest
from vhs.zoo import MODELS, TrainedModel, trained

COCO_MIRAGE_STEPS = 10_000  # batches of 16 samples: 160,000 samples, 13% of the official instruction data
MANIFEST = "models.json"  # beside the checkpoints: each one's weights digest, rewritten only when one changes


def _resolve(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _trainable(name: str) -> TrainedModel:
    model = MODELS.get(name)
    if model is None or not model.trainer:
        raise VhsError(f"unknown model {name!r} to train; use one of {', '.join(m.name for m in trained())}")
    return model


def _base(model: TrainedModel, out: Path) -> Any:
    needed = MODELS[model.builds_on]
    path = out.parent / needed.name
    if not (path / "config.json").exists():
        raise VhsError(
            f"{model.name} builds on {needed.name}, not found at {path} (run `vhs train {needed.name} --out {path}` first)"
        )
    return _resolve(needed.checkpoint).from_pretrained(path)


def hyperparameters(trainer: Callable, options: dict[str, Any]) -> dict[str, Any]:
    """Every setting a trainer ran with: its keyword defaults overridden by `options`, then under
    "constants" the numeric upper-case constants of its module and of the shared optimisation loop."""
    defaults = {p.name: p.default for p in inspect.signature(trainer).parameters.values() if p.default is not p.empty}
    constants = {
        name: getattr(module, name)
        for module in (inspect.getmodule(trainer), fit_module)
        for name in sorted(_assigned_here(module))
        if name.isupper() and _numeric(getattr(module, name))
    }
    return {**defaults, **options, "constants": constants}


def _assigned_here(module: ModuleType) -> set[str]:
    """The names a module assigns at its top level (not those it imports)."""
    names = set()
    for statement in ast.parse(inspect.getsource(module)).body:
        for target in statement.targets if isinstance(statement, ast.Assign) else []:
            names.update(node.id for node in ast.walk(target) if isinstance(node, ast.Name))
    return names


def _numeric(value: Any) -> bool:
    if isinstance(value, tuple):
        return bool(value) and all(_numeric(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def train_model(
    name: str,
    out: Path,
    steps: int | None = None,
    seed: int = 0,
    catalog: Catalog | None = None,
    profile: str = "synth",
    hub: HubMirageConfig | None = None,
) -> Path:
    """Train `name` on the synth training split (or `catalog`) and save it to `out`; return `out`.

    The checkpoint's `config.json` records the steps, seed, seconds, split and every hyperparameter of the
    trainer. On the coco profile only MIRAGE trains here: CLIP + a hub LM (`hub`, default
    `HubMirageConfig()`) on COCO train2017 (`train_hub_mirage`).
    """
    model = _trainable(name)
    if profile != "synth" and not model.trainer.startswith("vhs.mirage."):
        raise VhsError(f"only mirage and mirage-query train on the {profile} profile; {name} loads downloaded weights there")
    out = Path(out)
    start = time.perf_counter()
    if profile != "synth":
        steps = steps or COCO_MIRAGE_STEPS
        config = replace(hub or HubMirageConfig(), compression=model.options["compression"])
        network, curves = train_hub_mirage(catalog or coco_training_catalog(), steps, seed, config)
        split: dict | str = "COCO train2017"
        settings = {**hyperparameters(train_hub_mirage, {}), "config": asdict(config)}
    else:
        steps = steps or model.steps
        trainer = _resolve(model.trainer)
        base = [_base(model, out)] if model.builds_on else []
        network, curves = trainer(*base, catalog or training_catalog(), steps, seed, **model.options)
        split = {"images": SYNTH_TRAIN.images, "seed": SYNTH_TRAIN.seed}
        settings = hyperparameters(trainer, model.options)
    facts = {"steps": steps, "seed": seed, "seconds": round(time.perf_counter() - start, 1), "train_split": split}
    ranks = current()
    if ranks.world > 1:
        facts["ranks"] = ranks.world  # data-parallel: each step saw this many ranks' batches
    if ranks.leader:  # under torchrun the ranks hold the same weights; one writes them
        network.save_pretrained(out, curves, extra={"training": {**facts, "hyperparameters": settings}})
    return out


def train_all(runs: Path, steps: int | None = None, seed: int = 0) -> list[str]:
    """Train, in dependency order, every model whose checkpoint under `runs` is missing or older than the one it
    builds on; then rewrite `runs/models.json` if any checkpoint changed. Returns the names trained."""
    runs = Path(runs)
    done = []
    for model in trained():
        config = runs / model.name / "config.json"
        base = runs / model.builds_on / "config.json" if model.builds_on else None
        if config.exists() and not (base and base.stat().st_mtime_ns > config.stat().st_mtime_ns):
            continue
        print(f"train {model.name} -> {config.parent}", flush=True)
        train_model(model.name, config.parent, steps, seed)
        done.append(model.name)
    _write_manifest(runs)
    return done


def _write_manifest(runs: Path) -> None:
    """`runs/models.json`: each checkpoint's weights digest, written only when it differs (the book's notebooks
    depend on this file, so they re-run when a model changed and only then)."""
    digests = {m.name: weights_digest(runs / m.name) for m in trained() if (runs / m.name / "model.safetensors").exists()}
    text = json.dumps(digests, indent=2, sort_keys=True) + "\n"
    path = runs / MANIFEST
    if not path.exists() or path.read_text() != text:
        write_atomically(path, text.encode())
