"""Adapters for MoE models: dense linears, routers, and fused experts restricted to a hot subset.

`AdapterConfig` says what to adapt and how (method lora / hellora / loramoe / fft; variant none / dora / lori_d /
lori_s); `attach_adapters` wraps the model's modules in place; `save_adapter` / `load_adapter` persist them as
safetensors + JSON; `export` writes PEFT-loadable or merged checkpoints. `lori_mask_from_adapter` builds LoRI-S's
global mask from a LoRI-D adapter; `loramoe_balance_loss` returns LoRAMoE's localized balancing loss of the last
forward.
"""

from hellora.adapters.config import AdapterConfig
from hellora.adapters.inject import (adapter_layers, attach_adapters, disable_adapters, merge_adapters,
                                     remove_adapters)
from hellora.adapters.lori import lori_mask_from_adapter
from hellora.adapters.loramoe import loramoe_balance_loss

__all__ = ["AdapterConfig", "attach_adapters", "adapter_layers", "disable_adapters", "merge_adapters", "remove_adapters",
           "lori_mask_from_adapter", "loramoe_balance_loss"]
