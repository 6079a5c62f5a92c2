"""Where a local model runs: the device and the number type, from the `auto` defaults every local backend takes."""

import torch

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is present, else `cpu`; anything else as given."""
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """`auto` -> bfloat16 on CUDA, float32 elsewhere; or one of float32, float16, bfloat16."""
    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be auto or one of {', '.join(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]
