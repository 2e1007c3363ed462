"""The floating-point dtypes hellora accepts by name, defined once.

    DTYPES         canonical names -> torch dtypes; adapter weights (`adapter.adapter_dtype`) take these
    MODEL_DTYPES   DTYPES + the short aliases fp32 / bf16 / fp16 + "auto" (the checkpoint's own dtype), which
                   `model.dtype` and the loaders accept
"""

from __future__ import annotations

import torch

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MODEL_DTYPES: dict[str, torch.dtype | str] = {
    **{key: DTYPES[ALIASES.get(key, key)] for key in ("float32", "fp32", "bfloat16", "bf16", "float16", "fp16")},
    "auto": "auto",
}
