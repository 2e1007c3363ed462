"""Pretrained bases (cached per base seed), the data of each (target, base, seed), and routing profiles.

Every (target, base seed, fine-tune seed) draws its own fine-tuning, validation and test examples (seeded by all
three), and its own other-skill test sets, so no two bases share a test item by construction of the seeds (and
the train/test split of hellora.data.skills keeps validation and test prompts apart).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hellora.adapters import AdapterConfig
from hellora.choices import Method, Targets
from hellora.data.skills import generate_skill_examples
from hellora.data.text_snippets import text_snippets
from hellora.profiling import ExpertActivationCounter, ExpertProfile
from hellora.study.config import StudyConfig
from hellora.study.paths import base_folder, before_file, forward_file, skill_profile_file, warmup_file
from hellora.study.pretrain_finetune import adapted_copy, mixture_features, pretrain_skill_moe
from hellora.study.scoring import score_features
from hellora.study.skill_moe import StepSchedule, skill_features, train_steps
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, atomic_write_json, read_json

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def pretrained_base(cfg: StudyConfig, out: Path, base_seed: int, tokenizer: PreTrainedTokenizerBase,
                    accelerator: Accelerator, progress: bool = False) -> tuple[PreTrainedModel, dict]:
    """The base for `base_seed`: loaded when its folder is complete with the same recipe, else pretrained and
    saved atomically (a kill mid-pretraining leaves no folder, so the next run pretrains again)."""
    from hellora.models.loading import load_model

    folder = base_folder(out, base_seed)
    record = cfg.pretrain_record(base_seed)
    if (folder / "study_pretrain.json").is_file():
        saved = read_json(folder / "study_pretrain.json", "pretrain record")
        if not isinstance(saved, dict) or saved.get("recipe") != record:
            raise HelloraError(f"{folder} holds a model pretrained with another config; choose another --out")
        model = load_model(str(folder), dtype="float32")
        model.config.output_router_logits = False
        return model, saved
    counts = [(s, cfg.pretrain_per_skill) for s in cfg.skills]
    counts += [(t, cfg.target_pretrain) for t in cfg.targets] if cfg.target_pretrain else []
    data = mixture_features(tokenizer, counts, seed=base_seed)
    if cfg.text_examples:
        data += skill_features(tokenizer, text_snippets(cfg.text_files, cfg.text_examples, seed=base_seed))
    model, result = pretrain_skill_moe(cfg.moe_spec(), len(tokenizer), data, accelerator, init_seed=base_seed,
                                       train_seed=base_seed, name=f"pretrain base {base_seed}", progress=progress)
    saved = {"recipe": record, "final_loss": result.final_loss, "wall_time_s": result.wall_time_s, "examples": len(data)}
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "study_pretrain.json", saved)
    return model, saved


@dataclass
class StudyData:
    finetune: list[dict]           # prompt-masked features
    val: list[dict]
    test: list[dict]
    others: dict[str, list[dict]]  # non-target skill -> test features


def data_seed(target: str, base_seed: int, ft_seed: int, role: str) -> int:
    """A seed for one role's draw of one (target, base, seed): every cell gets its own examples."""
    return random.Random(f"hellora-study/{target}/{base_seed}/{ft_seed}/{role}").randrange(2 ** 31)


def study_data(cfg: StudyConfig, target: str, base_seed: int, ft_seed: int,
               tokenizer: PreTrainedTokenizerBase) -> StudyData:
    """Fine-tuning and validation examples from the train split (one draw, split in two: disjoint prompts),
    test examples from the test split (disjoint from both by construction, see hellora.data.skills)."""
    train = generate_skill_examples(target, cfg.finetune_examples + cfg.val_examples,
                                    seed=data_seed(target, base_seed, ft_seed, "train"), split="train")
    test = generate_skill_examples(target, cfg.test_examples, seed=data_seed(target, base_seed, ft_seed, "test"),
                                   split="test")
    others = {s: skill_features(tokenizer, generate_skill_examples(
        s, cfg.other_examples, seed=data_seed(target, base_seed, ft_seed, f"other-{s}"), split="test"))
        for s in cfg.skills}
    return StudyData(finetune=skill_features(tokenizer, train[:cfg.finetune_examples]),
                     val=skill_features(tokenizer, train[cfg.finetune_examples:]),
                     test=skill_features(tokenizer, test), others=others)


def evaluate(model: nn.Module, data: StudyData) -> dict:
    """Exact match (share) on validation, test and each other skill; the other skills' mean."""
    others = {s: score_features(model, f)["exact_match"] for s, f in data.others.items()}
    test = score_features(model, data.test)
    return {"val": score_features(model, data.val)["exact_match"], "test": test["exact_match"],
            "test_token_accuracy": test["token_accuracy"], "others": others,
            "others_mean": sum(others.values()) / len(others) if others else None}


def before_scores(cfg: StudyConfig, out: Path, target: str, base_seed: int, ft_seed: int, model: nn.Module,
                  data: StudyData) -> dict:
    """The base's scores before fine-tuning, and whether the pre-registered rule excludes it; cached."""
    path = before_file(out, target, base_seed, ft_seed)
    if path.is_file():
        return read_json(path, "base scores")
    record = {"target": target, "base_seed": base_seed, "ft_seed": ft_seed, **evaluate(model, data)}
    record["excluded"] = record["val"] > cfg.exclude_before_above
    atomic_write_json(path, record)
    return record


def warmup_sample(features: list[dict], fraction: float, seed: int) -> list[dict]:
    """ceil(fraction x N) examples drawn without replacement by `seed` (at least one)."""
    n = max(1, math.ceil(fraction * len(features)))
    order = list(range(len(features)))
    random.Random(f"hellora-study-warmup/{seed}").shuffle(order)
    return [features[i] for i in sorted(order[:n])]


def warmup_profile(cfg: StudyConfig, out: Path, target: str, base_seed: int, ft_seed: int, fraction: float,
                   model: nn.Module, data: StudyData, accelerator: Accelerator) -> ExpertProfile:
    """The paper's profiling: LoRA on every expert, attention and router (the run's rank, alpha = 2r) trains one
    epoch over the sample with routing counters on every training forward pass; the adapter is thrown away.
    Cached as JSON per (target, base, seed, fraction), with the lr it was made at (`StudyConfig.warmup_lr`): a
    cached profile made at another lr is refused, not reused."""
    path = warmup_file(out, target, base_seed, ft_seed, fraction)
    if path.is_file():
        cached = ExpertProfile.load(path)
        made_at = cached.meta.get("lr")
        if made_at is not None and made_at != cfg.warmup_lr:
            raise HelloraError(f"{path}: this warm-up profile was made at lr {made_at!r}, the config's warmup_lr is "
                               f"{cfg.warmup_lr:g}; write warmup_lr: {made_at!r} in the recipe or choose another --out")
        return cached
    assert cfg.warmup_lr is not None  # resolved by StudyConfig.__post_init__
    sample = warmup_sample(data.finetune, fraction, ft_seed)
    batch = min(cfg.batch_size, len(sample))
    steps = math.ceil(len(sample) / batch)
    warm = adapted_copy(model, AdapterConfig(method=Method.LORA, r=cfg.rank, alpha=2 * cfg.rank, targets=Targets.ALL,
                                             seed=ft_seed))
    with ExpertActivationCounter(warm) as counter:
        result = train_steps(warm, sample, StepSchedule(steps, cfg.warmup_lr, batch, seed=ft_seed), accelerator,
                             "warm-up", progress=False)
    profile = counter.to_profile("warmup", model_id="proxy-moe",
                                 source={"skill": target, "fraction": fraction, "seed": ft_seed,
                                         "examples": len(sample)},
                                 meta={"steps": result.steps, "median_step_s": result.median_step_s, "lr": cfg.warmup_lr})
    profile.save(path)
    return profile


def routing_on(model: nn.Module, features: list[dict], source: dict) -> ExpertProfile:
    """Forward-mode routing profile of `model` over `features` (no training)."""
    with ExpertActivationCounter(model) as counter:
        score_features(model, features)
    profile = counter.to_profile("forward", model_id="proxy-moe", source=source)
    return profile


def forward_profile(out: Path, target: str, base_seed: int, ft_seed: int, model: nn.Module,
                    data: StudyData) -> ExpertProfile:
    """Forward counting: the untouched base's routing over the fine-tuning data; cached."""
    path = forward_file(out, target, base_seed, ft_seed)
    if path.is_file():
        return ExpertProfile.load(path)
    profile = routing_on(model, data.finetune, {"skill": target, "seed": ft_seed, "examples": len(data.finetune)})
    profile.save(path)
    return profile


def other_skills_profile(cfg: StudyConfig, out: Path, base_seed: int) -> ExpertProfile:
    """The reference of the retention-aware rule: the routing of every pretraining skill on this base (profiled
    when the base was made, on test-split prompts), counts summed over skills. Counts (L, E)."""
    profiles = [ExpertProfile.load(skill_profile_file(out, base_seed, skill)) for skill in cfg.skills]
    if not profiles:
        raise HelloraError("proxy study: the retention-aware arm needs at least one other skill")
    first = profiles[0]
    counts = [[sum(p.counts[i][e] for p in profiles) for e in range(first.num_experts)] for i in range(len(first.layers))]
    mass = [[sum(p.mass[i][e] for p in profiles) for e in range(first.num_experts)] for i in range(len(first.layers))]
    return ExpertProfile(layers=first.layers, counts=counts, mass=mass,
                         tokens=[sum(p.tokens[i] for p in profiles) for i in range(len(first.layers))],
                         num_experts=first.num_experts, top_k=first.top_k, model_id=first.model_id, mode="forward",
                         source={"skills": list(cfg.skills), "base_seed": base_seed})
