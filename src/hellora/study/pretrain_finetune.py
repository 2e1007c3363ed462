"""The small-study core that `hellora demo` and the proxy study share: pretrain a skill MoE from a spec, and
fine-tune a copy of it with one adapter (its config and hot-expert placement).

Both drivers describe their model the same way (`SkillMoESpec`: shape + pretraining schedule) and differ only in
what they put around it: the demo is one base, one target and two methods printed at once; the study is many
bases, targets, arms and seeds, cached on disk. Keeping the build-pretrain-finetune steps here means a change to
how a base is made or tuned reaches both.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.data.skills import generate_skill_examples
from hellora.study.skill_moe import StepSchedule, build_skill_moe, skill_features, train_steps

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from hellora.loop.training import LoopResult
    from hellora.placement import HotExpertPlacement


@dataclass(frozen=True)
class SkillMoESpec:
    """Shape of a random-init OLMoE-architecture skill MoE and its pretraining schedule (AdamW, cosine)."""

    hidden_size: int
    layers: int
    experts: int
    top_k: int
    pretrain_steps: int
    pretrain_lr: float
    pretrain_batch: int
    intermediate_size: int | None = None   # None: hidden_size
    aux_loss: float = 0.02                 # router load-balancing loss coefficient during pretraining


def mixture_features(tokenizer: PreTrainedTokenizerBase, counts: list[tuple[str, int]], seed: int, split: str = "train") -> list[dict]:
    """Prompt-masked features of `n` examples of each (skill, n), concatenated in the given order."""
    data: list[dict] = []
    for skill, n in counts:
        data += skill_features(tokenizer, generate_skill_examples(skill, n, seed=seed, split=split))
    return data


def pretrain_skill_moe(spec: SkillMoESpec, vocab_size: int, data: list[dict], accelerator: Accelerator, *,
                       init_seed: int, train_seed: int, name: str = "pretrain",
                       progress: bool = True) -> tuple[PreTrainedModel, LoopResult]:
    """(model, train result): a skill MoE built from `spec` with weights seeded by `init_seed`, trained
    `spec.pretrain_steps` steps on `data` (batch order seeded by `train_seed`), router logits off afterwards so
    later forward passes return plain LM outputs."""
    model = build_skill_moe(vocab_size, hidden_size=spec.hidden_size, intermediate_size=spec.intermediate_size,
                            layers=spec.layers, experts=spec.experts, top_k=spec.top_k, seed=init_seed,
                            aux_loss=spec.aux_loss)
    schedule = StepSchedule(spec.pretrain_steps, spec.pretrain_lr, spec.pretrain_batch, seed=train_seed)
    result = train_steps(model, data, schedule, accelerator, name, progress=progress)
    model.config.output_router_logits = False
    return model, result


def adapted_copy(model: nn.Module, adapter: AdapterConfig,
                 placement: HotExpertPlacement | None = None) -> nn.Module:
    """A deep copy of `model` with adapters attached (`placement`: hot experts per layer, for HELLoRA arms);
    the original stays untouched so several methods start from the same weights."""
    tuned = copy.deepcopy(model)
    attach_adapters(tuned, adapter, placement)
    return tuned


def finetune_copy(model: nn.Module, adapter: AdapterConfig, placement: HotExpertPlacement | None,
                  features: list[dict], schedule: StepSchedule, accelerator: Accelerator, name: str, *,
                  progress: bool = True) -> tuple[nn.Module, LoopResult]:
    """(tuned copy, train result): `adapted_copy`, then `schedule`'s steps on `features`."""
    tuned = adapted_copy(model, adapter, placement)
    result = train_steps(tuned, features, schedule, accelerator, name, progress=progress)
    return tuned, result
