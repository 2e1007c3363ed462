"""A short, stable identity of a model's architecture, to refuse profiles and adapters made for another model.

Only the config fields that fix tensor shapes and routing enter the hash (sizes, counts, top-k, model type);
names, paths, dtypes and runtime switches do not, so the same architecture loaded from the hub, a local copy or
a preset fingerprints the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_SHAPE_WORDS = ("size", "layers", "experts", "heads", "vocab", "top_k", "topk", "dim", "rank", "num_", "n_", "first_k",
                "moe", "shared", "group")
_IGNORED = ("output_", "use_", "return_", "_name_or_path", "torch_dtype", "dtype", "transformers_version",
            "_attn_implementation", "_experts_implementation", "chunk_size_feed_forward", "pad_token_id",
            "bos_token_id", "eos_token_id", "tie_word_embeddings")


def config_fingerprint(config: Any) -> str:  # a PretrainedConfig or a dict, often read off a Module (untyped)
    """sha256 (16 hex chars) of the architecture-defining fields of a transformers config (or a dict)."""
    data = config if isinstance(config, dict) else config.to_dict()
    picked = {"model_type": data.get("model_type")}
    for key, value in sorted(data.items()):
        if key.startswith(_IGNORED) or not any(w in key for w in _SHAPE_WORDS):
            continue
        if isinstance(value, (int, float, str, bool)) or value is None:
            picked[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, str, bool)) for v in value):
            picked[key] = list(value)
    blob = json.dumps(picked, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def model_name(model: object) -> str | None:
    config = getattr(model, "config", None)
    return getattr(config, "_name_or_path", None) or None
