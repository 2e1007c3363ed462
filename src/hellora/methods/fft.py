"""Full fine-tuning ("fft"): no adapter; every base weight trains and the run saves the whole model."""

from __future__ import annotations

from hellora.methods.base import AdapterMethod


class FullFineTuning(AdapterMethod):
    label = "FFT"
    uses_targets = False
    trains_whole_model = True
    fsdp_refusal = ("full fine-tuning (adapter.method fft) is not supported under FSDP (it shards and freezes the "
                    "base); use an adapter method or DDP")
    peft_refusal = "full fine-tuning (there is no adapter: the run saved the whole model)"
    quantized_experts_refusal = "full fine-tuning trains every expert, so none can stay quantized"
