"""Save and load a model as `config.json` + `model.safetensors`, with its training curve beside them.

`config.json` records the synth vocabulary the model was trained with (its words in id order): the
vocabulary grows with the question templates' words, and a checkpoint read with another one would load
(its embedding table has as many rows) and answer nonsense; loading it is an error naming what to retrain.
"""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from safetensors.torch import load_model, save_model
from torch import nn

from vhs.errors import VhsError
from vhs.paths import write_atomically
from vhs.synth_models.tokenizer import Tokenizer

M = TypeVar("M", bound="Checkpointable")


class Checkpointable(nn.Module):
    """A module built from a config dataclass (`self.config`) that saves and loads itself."""

    kind: ClassVar[str]
    config: Any

    def save_pretrained(self, out: Path, curves: dict[str, list[float]] | None = None, extra: dict | None = None) -> None:
        """Write config.json (kind, config, extra facts), model.safetensors and curve.json (loss per phase) to `out`."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_model(self, str(out / "model.safetensors"))
        (out / "curve.json").write_text(json.dumps(curves or {}))
        saved = {"kind": self.kind, "config": asdict(self.config), "vocabulary": Tokenizer().words, **(extra or {})}
        # written last and whole: a checkpoint with a config.json is complete (`vhs train --all` skips it)
        write_atomically(out / "config.json", json.dumps(saved, indent=2).encode())

    @classmethod
    def training_name(cls, config: dict) -> str:
        """The `vhs train` name that trains a model of this saved config (its kind, unless a subclass says otherwise)."""
        return cls.kind

    @classmethod
    def from_pretrained(cls: type[M], path: Path) -> M:
        """Rebuild the module from its config and load its weights (in eval mode)."""
        config_path = Path(path) / "config.json"
        if not config_path.is_file():
            raise VhsError(f"no trained model at {path} (run `vhs train {cls.kind} --out {path}`)")
        saved = json.loads(config_path.read_text())
        if saved.get("kind") != cls.kind:
            raise VhsError(f"{path} holds a {saved.get('kind')!r} model, not {cls.kind!r}")
        retrain = f"retrain it with `vhs train {cls.training_name(saved['config'])} --out {path}`"
        words = Tokenizer().words
        if "vocabulary" in saved and saved["vocabulary"] != words:
            added = [w for w in words if w not in saved["vocabulary"]]
            removed = [w for w in saved["vocabulary"] if w not in words]
            change = ", ".join([*(f"+{w!r}" for w in added[:3]), *(f"-{w!r}" for w in removed[:3])]) or "the same words reordered"
            raise VhsError(f"{path} was trained on another synth vocabulary ({change}); {retrain}")
        model = cls(cls.config_class(**saved["config"]))
        try:
            load_model(model, str(Path(path) / "model.safetensors"))
        except RuntimeError as error:  # the shapes this code builds differ from the saved weights'
            raise VhsError(
                f"{path} holds a {cls.kind} saved by another version of vhs (its weights do not fit this code's shapes);"
                f" {retrain}"
            ) from error
        return model.eval()

    config_class: ClassVar[type]
