"""Find a backend by name: `vhs eval --model NAME[:MODEL_ID][?key=value&...]`.

Examples: `oracle`, `random?seed=1`, `openai:gpt-4o?temperature=0`,
`openai:Qwen/Qwen2-VL-7B-Instruct@http://127.0.0.1:8000/v1` (any OpenAI-compatible server). A NAME with a dot is a Python
path to a Backend class (`mypkg.mymodule.MyBackend`), so a backend can also live outside vhs.
Adding a backend to vhs: write `vhs/models/NAME.py` with a `Backend` subclass, add one line below.
"""

import importlib
import re
from urllib.parse import parse_qsl

from vhs.errors import VhsError
from vhs.models.base import Backend, BackendError, MissingKeyError

_SERVER = re.compile(r"^(?P<model>.*)@(?P<url>https?://.+)$")

BACKENDS: dict[str, str] = {
    "oracle": "vhs.models.oracle:OracleBackend",
    "always-yes": "vhs.models.always_yes:AlwaysYesBackend",
    "random": "vhs.models.random_guess:RandomBackend",
    "openai": "vhs.models.openai_chat:OpenAIBackend",
    "anthropic": "vhs.models.anthropic_messages:AnthropicBackend",
    "gemini": "vhs.models.gemini:GeminiBackend",
    "hf": "vhs.models.hf:HFBackend",
    "caption": "vhs.models.caption:CaptionBackend",
    "synth-llava": "vhs.models.synth_llava:SynthLlavaBackend",
    "synth-caption": "vhs.models.synth_caption:SynthCaptionBackend",
    "clip-retrieve": "vhs.models.clip_retrieve:ClipRetrieveBackend",
    "mirage": "vhs.models.mirage:MirageBackend",
}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split `NAME[:MODEL_ID][@BASE_URL][?k=v&...]` into (name, model id, options).

    `@http://…` or `@https://…` after the model id becomes the `base_url` option.
    """
    head, _, query = spec.partition("?")
    name, _, model_id = head.partition(":")
    if not name:
        raise VhsError(f"empty model name in {spec!r}")
    options = dict(parse_qsl(query, keep_blank_values=True))
    server = _SERVER.match(model_id)
    if server:
        model_id, options["base_url"] = server["model"], server["url"]
    return name, model_id, options


def load_backend(spec: str) -> Backend:
    """Instantiate the backend a spec names."""
    name, model_id, options = parse_spec(spec)
    if "." in name:
        module_name, _, class_name = name.rpartition(".")
    elif name in BACKENDS:
        module_name, _, class_name = BACKENDS[name].partition(":")
    else:
        raise VhsError(f"unknown model {name!r}; known: {', '.join(sorted(BACKENDS))} (or a Python path to a Backend class)")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise VhsError(f"cannot load backend {name!r}: {exc}") from None
    try:
        return cls(model_id, **options)
    except MissingKeyError:
        raise
    except (TypeError, ValueError, BackendError) as exc:
        raise VhsError(f"bad options for model {name!r}: {exc}") from None


def trained_here(name: str, runs: str = "runs") -> str:
    """The backend spec of a synth model trained by `vhs train` into `runs/NAME`: `synth-llava`,
    `synth-caption`, `mirage`, `mirage-query` (a `mirage` checkpoint), or `clip-retrieve` (synth-clip
    ranking, synth-llava answering)."""
    if name == "clip-retrieve":
        return f"clip-retrieve:{runs}/synth-clip?reader={runs}/synth-llava"
    if name in ("synth-llava", "synth-caption", "mirage", "mirage-query"):
        return f"{name.removesuffix('-query')}:{runs}/{name}"
    raise VhsError(f"{name!r} is not a model trained here; use synth-llava, synth-caption, clip-retrieve, mirage or mirage-query")
