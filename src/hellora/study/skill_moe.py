"""The pieces shared by `hellora demo` and the proxy study: a small OLMoE-architecture MoE built in-process,
skill examples as training features, a fixed-step trainer, and exact-match accuracy by greedy generation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hellora.choices import Scheduler
from hellora.config import TrainConfig
from hellora.data import PadCollator, encode_pairs, encode_prompt, exact_match
from hellora.loop.training import LoopResult, train_loop

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def build_skill_moe(vocab_size: int, *, hidden_size: int, layers: int, experts: int, top_k: int, seed: int,
                    intermediate_size: int | None = None, aux_loss: float = 0.02) -> PreTrainedModel:
    """Random-init OLMoE-architecture causal LM with the router's load-balancing loss on (for pretraining)."""
    from hellora.models.loading import config_for_model, model_from_config

    config = config_for_model(
        "olmoe", vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size or hidden_size,
        num_hidden_layers=layers, num_attention_heads=max(1, hidden_size // 32),
        num_key_value_heads=max(1, hidden_size // 32),
        num_experts=experts, num_experts_per_tok=top_k, max_position_embeddings=128, router_aux_loss_coef=aux_loss,
        output_router_logits=True, pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    torch.manual_seed(seed)
    return model_from_config(config, dtype=torch.float32)


def skill_features(tokenizer: Any, examples: list[dict]) -> list[dict]:
    """Prompt-masked training features of {prompt, answer} examples."""
    return encode_pairs(tokenizer, [(e["prompt"], e["answer"]) for e in examples], max_length=64, max_prompt_length=48)


@torch.no_grad()
def accuracy(model: Any, tokenizer: Any, examples: list[dict], batch_size: int = 64) -> float:
    """Greedy exact match of the generated answer (up to EOS) on `examples`."""
    model.eval()
    collate = PadCollator(tokenizer.pad_token_id, padding_side="left")
    correct = 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        batch = collate([{"input_ids": ids, "attention_mask": [1] * len(ids)}
                         for ids in (encode_prompt(tokenizer, e["prompt"]) for e in chunk)])
        out = model.generate(**batch, max_new_tokens=14, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        correct += sum(exact_match(t, e["answer"]) for t, e in zip(texts, chunk))
    return correct / len(examples)


@dataclass(frozen=True)
class StepSchedule:
    """A fixed-step AdamW schedule: `steps` optimizer steps of global batch `batch` at peak learning rate `lr`
    (cosine, 5% warm-up), batch order seeded by `seed`."""

    steps: int
    lr: float
    batch: int
    seed: int = 0

    def train_config(self) -> TrainConfig:
        """The schedule as the training loop's TrainConfig (no checkpoints, no step logging)."""
        return TrainConfig(learning_rate=self.lr, batch_size=self.batch, micro_batch_size=self.batch,
                           max_steps=self.steps, epochs=1.0, warmup_ratio=0.05, lr_scheduler=Scheduler.COSINE,
                           seed=self.seed, save_steps=0, logging_steps=10 ** 9)


def train_steps(model: nn.Module, features: list[dict], schedule: StepSchedule, accelerator: Any, name: str,
                progress: bool = True) -> LoopResult:
    """`schedule`'s AdamW steps on whatever `model` has trainable."""
    return train_loop(model, features, schedule.train_config(), accelerator=accelerator, name=name, pad_token_id=0,
                      progress=progress)
