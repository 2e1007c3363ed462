"""Pretrained bases (cached per base seed), the study's fixed data, and warm-up profiles (cached per run seed).

Layout under the study's output folder:
    bases/seed{B}/                 the pretrained MoE (save_pretrained) + study_pretrain.json (written last)
    {target}/data-free             nothing: the data are regenerated from fixed seeds (see `study_data`)
    {target}/base{B}/before.json   the base's scores and routing on the target and the other skills
    {target}/base{B}/warmup/s{S}-f{F}.json   warm-up profile of fine-tune seed S on fraction F of the data
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

from hellora.adapters import AdapterConfig
from hellora.data.skills import generate_skill_examples
from hellora.data.text_snippets import text_snippets
from hellora.profiling import ExpertActivationCounter, ExpertProfile
from hellora.study.config import StudyConfig
from hellora.study.scoring import score_with_routing
from hellora.study.core import adapted_copy, mixture_features, pretrain_skill_moe
from hellora.study.paths import base_folder, warmup_file
from hellora.study.toy import skill_features, train_steps
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, atomic_write_json, read_json

DATA_SEED = 7    # fine-tuning + validation examples: the same for every arm and seed
TEST_SEED = 11   # test prompts (target and other skills)


def pretrained_base(cfg: StudyConfig, out: Path, base_seed: int, tokenizer, accelerator, progress: bool = False):
    """The base for `base_seed`: loaded when its folder is complete with the same recipe, else pretrained and
    saved atomically (a kill mid-pretraining leaves no folder, so the next run pretrains again)."""
    from hellora.models.loading import load_model

    folder = base_folder(out, base_seed)
    record = cfg.pretrain_record(base_seed)
    if (folder / "study_pretrain.json").is_file():
        saved = read_json(folder / "study_pretrain.json", "pretrain record")
        if saved.get("recipe") != record:
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


def study_data(cfg: StudyConfig, target: str, tokenizer) -> StudyData:
    """Fine-tuning and validation examples from the train split (one draw, split in two: disjoint prompts),
    test examples from the test split (disjoint from both by construction, see hellora.data.skills)."""
    train = generate_skill_examples(target, cfg.finetune_examples + cfg.val_examples, seed=DATA_SEED, split="train")
    test = generate_skill_examples(target, cfg.test_examples, seed=TEST_SEED, split="test")
    others = {s: skill_features(tokenizer, generate_skill_examples(s, cfg.other_examples, seed=TEST_SEED, split="test"))
              for s in cfg.skills}
    return StudyData(finetune=skill_features(tokenizer, train[:cfg.finetune_examples]),
                     val=skill_features(tokenizer, train[cfg.finetune_examples:]),
                     test=skill_features(tokenizer, test), others=others)


def before_scores(cfg: StudyConfig, out: Path, target: str, base_seed: int, model, data: StudyData) -> dict:
    """The base's target (val, test) and other-skill scores and its routing of the target's test tokens; cached."""
    path = out / target / f"base{base_seed}" / "before.json"
    if path.is_file():
        return read_json(path, "base scores")
    test, routing = score_with_routing(model, data.test)
    record = {"test": test, "val": score_with_routing(model, data.val)[0],
              "others": {s: score_with_routing(model, f)[0] for s, f in data.others.items()},
              "routing": routing.to_dict()}
    atomic_write_json(path, record)
    return record


def warmup_sample(features: list[dict], fraction: float, seed: int) -> list[dict]:
    """ceil(fraction x N) examples drawn without replacement by `seed` (at least one)."""
    n = max(1, math.ceil(fraction * len(features)))
    order = list(range(len(features)))
    random.Random(f"hellora-study-warmup/{seed}").shuffle(order)
    return [features[i] for i in sorted(order[:n])]


def warmup_profile(cfg: StudyConfig, out: Path, target: str, base_seed: int, ft_seed: int, fraction: float, model,
                   data: StudyData, accelerator) -> ExpertProfile:
    """The paper's profiling: LoRA on every expert, attention and router (the run's rank, alpha = 2r) trains one
    epoch over the sample with routing counters on every training forward pass; the adapter is thrown away.
    The learning rate is the middle of `lr_grid`. Cached as JSON per (target, base, seed, fraction)."""
    path = warmup_file(out, target, base_seed, ft_seed, fraction)
    if path.is_file():
        return ExpertProfile.load(path)
    sample = warmup_sample(data.finetune, fraction, ft_seed)
    batch = min(cfg.batch_size, len(sample))
    steps = math.ceil(len(sample) / batch)
    warm = adapted_copy(model, AdapterConfig(method="lora", r=cfg.rank, alpha=2 * cfg.rank, targets="all",
                                             seed=ft_seed))
    lr = sorted(cfg.lr_grid)[len(cfg.lr_grid) // 2]
    with ExpertActivationCounter(warm) as counter:
        result = train_steps(warm, sample, steps, lr, batch, accelerator, "warm-up", seed=ft_seed, progress=False)
    profile = counter.to_profile("warmup", model_id="proxy-moe",
                                 source={"skill": target, "fraction": fraction, "seed": ft_seed,
                                         "examples": len(sample)},
                                 meta={"steps": result.steps, "median_step_s": result.median_step_s})
    profile.save(path)
    return profile
