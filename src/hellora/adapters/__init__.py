"""LoRA adapters for MoE models: dense linears, routers, and fused experts restricted to a hot subset.

`AdapterConfig` says what to adapt; `attach_adapters` wraps the model's modules in place; `save_adapter` /
`load_adapter` persist them as safetensors + JSON; `export` writes PEFT-loadable or merged checkpoints.
"""

from hellora.adapters.config import AdapterConfig
from hellora.adapters.inject import (adapter_layers, attach_adapters, disable_adapters, merge_adapters,
                                     remove_adapters)

__all__ = ["AdapterConfig", "attach_adapters", "adapter_layers", "disable_adapters", "merge_adapters", "remove_adapters"]
