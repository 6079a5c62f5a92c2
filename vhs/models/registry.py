"""Find a backend by name: `vhs eval --model NAME[:MODEL_ID][?key=value&...]`.

Examples: `oracle`, `random?seed=1`, `openai:gpt-4o?temperature=0`,
`openai:Qwen/Qwen2-VL-7B-Instruct@http://127.0.0.1:8000/v1` (any OpenAI-compatible server). A NAME with a dot is a Python
path to a Backend class (`mypkg.mymodule.MyBackend`), so a backend can also live outside vhs.
Adding a backend to vhs: write `vhs/models/NAME.py` with a `Backend` subclass, add one line below.
"""

import functools
import importlib
import inspect
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

from vhs.errors import VhsError
from vhs.models.base import Backend
from vhs.protocol import BackendError, MissingKeyError
from vhs.zoo import MODELS, evaluated

BACKENDS: dict[str, str] = {
    "oracle": "vhs.models.oracle:OracleBackend",
    "always-yes": "vhs.models.always_yes:AlwaysYesBackend",
    "random": "vhs.models.random_guess:RandomBackend",
    "openai": "vhs.models.openai_chat:OpenAIBackend",
    "anthropic": "vhs.models.anthropic_messages:AnthropicBackend",
    "gemini": "vhs.models.gemini:GeminiBackend",
    "openrouter": "vhs.models.openrouter:OpenRouterBackend",
    "hf": "vhs.models.hf:HFBackend",
    "caption": "vhs.models.caption:CaptionBackend",
    "synth-llava": "vhs.models.synth_llava:SynthLlavaBackend",
    "synth-caption": "vhs.models.synth_caption:SynthCaptionBackend",
    "clip-retrieve": "vhs.models.clip_retrieve:ClipRetrieveBackend",
    "mirage": "vhs.models.mirage:MirageBackend",
    "mirage-official": "vhs.models.mirage_official:OfficialMirageBackend",
}


def parse_spec(spec: str) -> tuple[str, str, dict[str, str]]:
    """Split `NAME[:MODEL_ID][@BASE_URL][?k=v&...]` into (name, model id, options).

    `@http://…` or `@https://…` after the model id becomes the `base_url` option; `NAME:` with
    nothing after the colon, an `@` that is not followed by a URL, and an option given twice are errors.
    """
    head, _, query = spec.partition("?")
    name, colon, model_id = head.partition(":")
    if not name:
        raise VhsError(f"empty model name in {redact(spec)!r}")
    if colon and not model_id:
        raise VhsError(f"empty model id in {redact(spec)!r}: give {name}:MODEL_ID, or {name} alone for its default")
    pairs = parse_qsl(query, keep_blank_values=True)
    options = dict(pairs)
    if len(options) != len(pairs):
        raise VhsError(f"an option is given twice in {redact(spec)!r}")
    model_id, at, url = model_id.rpartition("@") if "@" in model_id else (model_id, "", "")
    if at:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise VhsError(f"{name}: {'@' + url!r} is not a base URL; write MODEL@http://HOST:PORT/v1")
        options["base_url"] = url
    return name, model_id, options


def backend_class(name: str) -> type[Backend]:
    """The Backend subclass a spec's NAME names: a registered backend, or a dotted Python path to one."""
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
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise VhsError(f"{name!r} is not a Backend subclass (a backend subclasses vhs.models.base.Backend)")
    return cls


def accepted_options(cls: type[Backend]) -> set[str]:
    """The options a backend declares: the keyword arguments of its `__init__`, and of each base's while one
    passes `**options` on."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        accepted |= {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self", "model_id"}
        if not any(p.kind is p.VAR_KEYWORD for p in parameters) or klass is Backend:
            break
    return accepted


def load_backend(spec: str) -> Backend:
    """Instantiate the backend a spec names; an unknown option is an error that lists the accepted ones."""
    name, model_id, options = parse_spec(spec)
    cls = backend_class(name)
    unknown = sorted(set(options) - accepted_options(cls))
    if unknown:
        accepted = ", ".join(sorted(accepted_options(cls))) or "none"
        raise VhsError(f"{name}: unknown option{'s' * (len(unknown) > 1)} {', '.join(unknown)}; accepted: {accepted}")
    try:
        return cls(model_id, **options)
    except MissingKeyError:
        raise
    except (TypeError, ValueError, BackendError) as exc:
        raise VhsError(f"bad options for model {name!r}: {exc}") from None


@functools.cache
def secret_option_names() -> frozenset[str]:
    """Every option that some registered backend treats as a secret (what `redact` removes)."""
    names = set(Backend.secret_params)
    for target in BACKENDS.values():
        module_name, _, class_name = target.partition(":")
        try:
            names |= getattr(importlib.import_module(module_name), class_name).secret_params
        except ImportError:  # an optional backend's SDK is not installed: its secrets are no different
            continue
    return frozenset(names)


def redact(text: str) -> str:
    """`text` with the value of every secret option in a model spec (`?api_key=…`, `&api_key=…`) replaced by `***`."""
    names = "|".join(re.escape(n) for n in sorted(secret_option_names()))
    return re.sub(rf"([?&](?:{names})=)[^&\s\"',\\]*", r"\1***", text)


def public_spec(spec: str) -> str:
    """A spec fit to label rows and print: its secret options removed."""
    head, _, query = spec.partition("?")
    secrets = secret_option_names()
    kept = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k not in secrets]
    return f"{head}?{urlencode(kept, safe=':/@,')}" if kept else head


def trained_here(name: str, runs: str = "runs") -> str:
    """The backend spec of a model trained here (`vhs.zoo`) whose checkpoints `vhs train` wrote under `runs`."""
    model = MODELS.get(name)
    if model is None or not model.spec:
        known = ", ".join(m.name for m in evaluated())
        raise VhsError(f"{name!r} is not a model trained here; use {known}")
    return model.spec.format(runs=runs)
