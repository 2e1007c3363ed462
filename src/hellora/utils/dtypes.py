"""The floating-point dtypes hellora accepts by name, defined once.

    DTYPE_NAMES    canonical names: what `adapter.adapter_dtype` accepts (checked without importing torch)
    DTYPES         canonical names -> torch dtypes
    MODEL_DTYPES   DTYPES + the short aliases fp32 / bf16 / fp16 + "auto" (the checkpoint's own dtype), which
                   `model.dtype` and the loaders accept

DTYPES and MODEL_DTYPES are built on first use, so validating a config does not import torch (about 1.5 s).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    DTYPES: dict[str, torch.dtype]
    MODEL_DTYPES: dict[str, torch.dtype | str]

DTYPE_NAMES = ("float32", "bfloat16", "float16")
ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MODEL_DTYPE_NAMES = (*DTYPE_NAMES, *ALIASES, "auto")


def __getattr__(name: str):
    if name not in ("DTYPES", "MODEL_DTYPES"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import torch

    dtypes = {key: getattr(torch, key) for key in DTYPE_NAMES}
    model_dtypes = {**{key: dtypes[ALIASES.get(key, key)] for key in (*DTYPE_NAMES, *ALIASES)}, "auto": "auto"}
    globals().update(DTYPES=dtypes, MODEL_DTYPES=model_dtypes)
    return globals()[name]
