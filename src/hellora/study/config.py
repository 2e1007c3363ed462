"""`StudyConfig`: the proxy study's shape, read from YAML (recipes/proxy/*.yaml) plus key=value overrides.

The model and pretraining fields decide a base (cached per base seed); the rest decide the fine-tuning runs.
The design the statistics rely on is part of the config, so it is written down before the run:
- `base_seeds`: the analysed bases (the unit of every test); `pilot_seed`: the base the grid and steps were
  calibrated on, never analysed (it may not be one of `base_seeds`);
- `exclude_before_above`: a base whose exact match on the target's validation set is above this share *before*
  fine-tuning is dropped from that target (the target must be new to the base);
- `lr_grid`: every arm runs at every value; the reported lr is chosen by cross-fitting over bases;
- `warmup_lr`: the warm-up profile's learning rate (the same for every arm); unset, the middle of `lr_grid`. It is
  resolved when the config is made and saved with the run, so widening the grid later cannot change it silently:
  a resumed folder whose grid moved its middle is refused until the recipe writes the lr its profiles were made at;
- `finetune_steps`, `target_steps`: the fine-tuning length, per target where the pilot calibrated one (targets
  differ in how many steps bring LoRA into the 40-85% band);
- `checkpoints`: evaluations per run (target and other skills), for the forgetting frontier;
- `primary`: at most 3 contrasts (Holm over them only), `iso_target`: the target accuracy (points) at which
  retention is compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from hellora.data.skills import SKILLS
from hellora.study.arms import ARMS
from hellora.study.contrasts import MAX_PRIMARY, Contrast
from hellora.study.pretrain_finetune import SkillMoESpec
from hellora.utils.errors import HelloraError
from hellora.utils.yaml_values import read_yaml

# fields that decide a pretrained base (its cache key, with the base seed)
PRETRAIN_FIELDS = ("skills", "targets", "target_pretrain", "pretrain_per_skill", "text_files", "text_examples",
                   "hidden_size", "intermediate_size", "layers", "experts", "top_k", "aux_loss", "pretrain_steps",
                   "pretrain_lr", "pretrain_batch")

DEFAULT_PRIMARY: list[dict[str, object]] = [
    {"a": "hellora", "b": "lora", "metric": "test", "kind": "noninferiority", "margin": 5.0},
    {"a": "hellora", "b": "random", "metric": "test", "kind": "superiority"},
    {"a": "hellora", "b": "lora", "metric": "iso_retention", "kind": "noninferiority", "margin": 2.0},
]


def sqrt2_grid(centre: float, n: int) -> list[float]:
    """`n` learning rates spaced x sqrt(2) around `centre` (rounded to 3 significant digits)."""
    first = -(n - 1) / 2
    return [float(f"{centre * math.sqrt(2) ** (first + i):.3g}") for i in range(n)]


_LIST_ITEMS = {"skills": "text", "targets": "text", "arms": "text", "text_files": "text", "base_seeds": "integer",
               "ft_seeds": "integer", "warmup_fractions": "number", "lr_grid": "number", "fft_lr_grid": "number"}


def _check_field_types(cfg: StudyConfig) -> None:
    """Each field of a study config has its type (text, integers that are not bools, finite numbers), so the range
    checks after it compare like with like; one line naming the field."""
    from hellora.utils.records import integer, is_integer, number

    for name, kind in _LIST_ITEMS.items():
        value = getattr(cfg, name)
        if not isinstance(value, list):
            raise HelloraError(f"proxy config: {name} must be a list, got {value!r}")
        for item in value:
            ok = isinstance(item, str) if kind == "text" else is_integer(item) if kind == "integer" else \
                isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)
            if not ok:
                raise HelloraError(f"proxy config: {name} must list only {kind}s, got {item!r}")
    for name in ("aux_loss", "pretrain_lr", "warmup_fraction", "exclude_before_above", "iso_target"):
        number(getattr(cfg, name), f"proxy config: {name}", low=0)
    if cfg.warmup_lr is not None and number(cfg.warmup_lr, "proxy config: warmup_lr", low=0) == 0:
        raise HelloraError("proxy config: warmup_lr must be positive")
    integer(cfg.pilot_seed, "proxy config: pilot_seed", optional=True)
    if not isinstance(cfg.target_steps, dict):
        raise HelloraError(f"proxy config: target_steps must be a mapping of target to steps, got {cfg.target_steps!r}")
    for name, low in (("target_pretrain", 0), ("text_examples", 0), ("pretrain_per_skill", 0), ("hidden_size", 1),
                      ("intermediate_size", 1)):
        integer(getattr(cfg, name), f"proxy config: {name}", low=low)


@dataclass
class StudyConfig:
    skills: list = field(default_factory=lambda: ["add", "max", "copy", "upper", "sort", "reverse"])
    targets: list = field(default_factory=lambda: ["shift", "sub"])  # fine-tuning targets, one study each
    target_pretrain: int = 0             # examples of each target in pretraining (0: held out)
    exclude_before_above: float = 0.05   # drop a base scoring above this on the target's val before fine-tuning
    pretrain_per_skill: int = 800
    text_files: list = field(default_factory=list)  # real text mixed into pretraining (JSON/JSONL/CSV by path)
    text_examples: int = 0
    hidden_size: int = 48
    intermediate_size: int = 96
    layers: int = 3
    experts: int = 16
    top_k: int = 2
    aux_loss: float = 0.02
    pretrain_steps: int = 1000
    pretrain_lr: float = 3e-3
    pretrain_batch: int = 64
    base_seeds: list = field(default_factory=lambda: list(range(10)))
    pilot_seed: int | None = 100         # calibration base, never analysed
    ft_seeds: list = field(default_factory=lambda: [0])
    finetune_examples: int = 512
    val_examples: int = 200              # drawn from the train split, disjoint from the fine-tuning examples
    test_examples: int = 500             # the test split (never used to choose anything)
    other_examples: int = 200            # per non-target skill, before and at every checkpoint
    finetune_steps: int = 60
    target_steps: dict = field(default_factory=dict)  # target -> steps, overriding finetune_steps for that target
    checkpoints: int = 3                 # evaluations per run, evenly spaced, the last at the run's final step
    batch_size: int = 32
    rank: int = 8
    warmup_fraction: float = 0.1         # the paper's default warm-up profile
    warmup_fractions: list = field(default_factory=lambda: [0.01, 0.05, 0.1, 1.0])
    warmup_lr: float | None = None       # the warm-up's lr; None: the grid value just above the middle of lr_grid
    lr_grid: list = field(default_factory=lambda: sqrt2_grid(6e-3, 4))
    fft_lr_grid: list = field(default_factory=lambda: sqrt2_grid(6e-4, 4))
    arms: list = field(default_factory=lambda: ["lora", "hellora", "random", "hellora-pure", "retain"])
    primary: list = field(default_factory=lambda: [dict(c) for c in DEFAULT_PRIMARY])
    iso_target: float = 50.0             # points of target test exact match where retention is compared
    workers: int = 2                     # processes ((target, base) jobs in parallel)
    threads: int = 1                     # torch threads per process

    def __post_init__(self) -> None:
        _check_field_types(self)  # types first (a study config is a file like any other: untrusted)
        for name in ("skills", "targets", "base_seeds", "ft_seeds", "warmup_fractions", "lr_grid", "fft_lr_grid",
                     "arms", "text_files", "primary"):
            if not isinstance(getattr(self, name), list):
                raise HelloraError(f"proxy config: {name} must be a list, got {getattr(self, name)!r}")
        for skill in self.skills + self.targets:
            if skill not in SKILLS:
                raise HelloraError(f"proxy config: unknown skill {skill!r}; known: {', '.join(SKILLS)}")
        if not self.targets:
            raise HelloraError("proxy config: targets must name at least one skill")
        overlap = set(self.skills) & set(self.targets)
        if overlap:
            raise HelloraError(f"proxy config: targets {sorted(overlap)} are also in skills; a target is held out "
                               f"of pretraining or rare in it (target_pretrain)")
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise HelloraError(f"proxy config: unknown arm {bad[0]!r}; choose from {', '.join(ARMS)}")
        for arm in self.arms:
            source = ARMS[arm].after
            if source and source not in self.arms:
                raise HelloraError(f"proxy config: arm {arm!r} needs arm {source!r} in arms")
            w = ARMS[arm].warmup
            if w is not None and w not in self.warmup_fractions:
                raise HelloraError(f"proxy config: arm {arm!r} needs warm-up fraction {w} in warmup_fractions")
        if self.warmup_fraction not in self.warmup_fractions:
            raise HelloraError("proxy config: warmup_fraction must be one of warmup_fractions")
        if any(not 0 < f <= 1 for f in self.warmup_fractions):
            raise HelloraError("proxy config: warmup_fractions must lie in (0, 1]")
        if len(set(self.base_seeds)) != len(self.base_seeds) or len(set(self.ft_seeds)) != len(self.ft_seeds):
            raise HelloraError("proxy config: base_seeds and ft_seeds must not repeat a seed")
        if not self.base_seeds or not self.ft_seeds:
            raise HelloraError("proxy config: base_seeds and ft_seeds need at least one seed each")
        if self.pilot_seed is not None and self.pilot_seed in self.base_seeds:
            raise HelloraError(f"proxy config: pilot_seed {self.pilot_seed} is also in base_seeds; the pilot base "
                               f"calibrates the design and is never analysed")
        if not self.lr_grid or not self.fft_lr_grid or any(v <= 0 for v in self.lr_grid + self.fft_lr_grid):
            raise HelloraError("proxy config: lr_grid and fft_lr_grid need positive learning rates")
        if self.warmup_lr is None:
            self.warmup_lr = self.lr_grid[len(self.lr_grid) // 2]
        for name in ("lr_grid", "fft_lr_grid"):
            if sorted(set(getattr(self, name))) != getattr(self, name):
                raise HelloraError(f"proxy config: {name} must be increasing without repeats")
        for name in ("finetune_examples", "val_examples", "test_examples", "other_examples", "finetune_steps",
                     "batch_size", "rank", "pretrain_steps", "pretrain_batch", "layers", "experts", "top_k", "workers",
                     "threads", "checkpoints"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HelloraError(f"proxy config: {name} must be a positive integer, got {value!r}")
        if self.top_k > self.experts:
            raise HelloraError("proxy config: top_k must not exceed experts")
        for target, steps in self.target_steps.items():
            if target not in self.targets:
                raise HelloraError(f"proxy config: target_steps names {target!r}, which is not in targets")
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise HelloraError(f"proxy config: target_steps.{target} must be a positive integer, got {steps!r}")
        if self.checkpoints > min(map(self.steps_for, self.targets)):
            raise HelloraError("proxy config: checkpoints must not exceed any target's fine-tuning steps")
        if not 0 <= self.exclude_before_above <= 1:
            raise HelloraError("proxy config: exclude_before_above is a share in [0, 1]")
        if not 0 < self.iso_target < 100:
            raise HelloraError("proxy config: iso_target is in points, between 0 and 100")
        if len(self.primary) > MAX_PRIMARY:
            raise HelloraError(f"proxy config: primary lists {len(self.primary)} contrasts; at most {MAX_PRIMARY}")
        for i, contrast in enumerate(self.primary_contrasts()):
            for arm in (contrast.a, contrast.b):
                if arm not in self.arms:
                    raise HelloraError(f"proxy config: primary[{i}] names arm {arm!r}, which is not in arms")

    def primary_contrasts(self) -> list[Contrast]:
        return [Contrast.parse(raw, f"primary[{i}]") for i, raw in enumerate(self.primary)]

    def steps_for(self, target: str) -> int:
        """The fine-tuning steps of every run on `target`: its `target_steps` entry, else `finetune_steps`."""
        return self.target_steps.get(target, self.finetune_steps)

    def checkpoint_steps(self, target: str) -> list[int]:
        """The steps a run on `target` is evaluated at: evenly spaced, the last one at its final step."""
        n, steps = self.checkpoints, self.steps_for(target)
        return sorted({max(1, round(steps * (i + 1) / n)) for i in range(n)})

    def hot_k(self, factor: float) -> int:
        """Hot experts per layer for an arm's k factor (at least 1, at most every expert)."""
        return max(1, min(self.experts, round(factor * self.top_k)))

    def lr_grid_for(self, arm: str) -> list:
        """The learning rates an arm runs at: full fine-tuning has its own, lower grid."""
        return self.fft_lr_grid if ARMS[arm].rules.trains_whole_model else self.lr_grid

    def moe_spec(self) -> SkillMoESpec:
        """The base's shape and pretraining schedule, for `study.pretrain_finetune.pretrain_skill_moe`."""
        return SkillMoESpec(hidden_size=self.hidden_size, intermediate_size=self.intermediate_size, layers=self.layers,
                            experts=self.experts, top_k=self.top_k, aux_loss=self.aux_loss,
                            pretrain_steps=self.pretrain_steps, pretrain_lr=self.pretrain_lr,
                            pretrain_batch=self.pretrain_batch)

    def pretrain_record(self, base_seed: int) -> dict:
        record = {k: v for k, v in asdict(self).items() if k in PRETRAIN_FIELDS}
        return {**record, "base_seed": base_seed}

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: dict | None = None) -> StudyConfig:
        """The study of a YAML file (None: the defaults) with `overrides` (field -> value) on top."""
        data = read_yaml(path, "proxy config", hint="see recipes/proxy/ for examples") if path else {}
        data = {**data, **(overrides or {})}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HelloraError(f"proxy config: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**data)
