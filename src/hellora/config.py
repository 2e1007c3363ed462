"""Run configuration: typed dataclasses, YAML recipes and `key=value` command-line overrides.

    config = load_run_config("recipes/olmoe-1b-7b/gsm8k-hellora.yaml", ["train.epochs=1", "selection.k=4"])

A recipe is YAML whose top-level sections mirror `RunConfig`. Overrides use dotted paths and YAML values
(`train.learning_rate=2e-4`, `model.overrides={num_hidden_layers: 4}`); numbers are read as people type them
(`2e-4`, `1E-3`, `.5`: see `hellora.utils.yaml_values`, whose `read_yaml` reads every hellora YAML file). Each
section checks its own fields in `__post_init__` (choices parsed into `hellora.choices` members, which the section
then holds; signs and ranges), so a whole config is validated before any work starts.
Unknown sections or keys, wrong types and bad values raise `HelloraError` naming the key and where its value came
from: the recipe file and line, or the command-line override.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from hellora.adapters.config import AdapterConfig
from hellora.placement import NEEDS_REFERENCE, needs_reference
from hellora.utils.checks import check, number, positive_int
from hellora.utils.dtypes import MODEL_DTYPE_NAMES
from hellora.utils.errors import HelloraError
from hellora.utils.yaml_values import apply_overrides as apply_key_values
from hellora.utils.yaml_values import OverrideRules, read_yaml
from hellora.choices import (CHOICES, EvalTask, ExpertPrecision, Method, MixedPrecision, ProfileMode, Scheduler,
                             Strategy, TrainTask)

# Table 7 of the paper: (PEFT learning rate, full fine-tuning learning rate, epochs) per task family.
PAPER_SCHEDULE: dict[TrainTask, tuple[float, float, int]] = {
    TrainTask.GSM8K: (4e-4, 4e-5, 3),
    TrainTask.CODEALPACA: (2e-3, 2e-4, 2),
    TrainTask.SAFERPACA: (4e-4, 2e-5, 1),
    TrainTask.SAFETY: (4e-4, 2e-5, 1),
}
PAPER_BATCH = {"peft": 128, "fft": 256}


@dataclass
class ModelConfig:
    name: str = "olmoe-1b-7b"          # preset, local folder or hub id
    dtype: str = "bfloat16"            # bfloat16 | float16 | float32 | auto
    trust_remote_code: bool = False
    overrides: dict = field(default_factory=dict)  # config fields to change (e.g. fewer layers for a smoke run)
    tokenizer: str | None = None       # default: the model's; "tiny" = hellora's in-process character tokenizer
    cold_experts: ExpertPrecision = ExpertPrecision.KEEP  # keep | int8 | nf4: storage of the frozen non-adapted experts
    hot_experts: ExpertPrecision = ExpertPrecision.KEEP   # the same for the adapted experts (QLoRA-style: nf4)

    def __post_init__(self) -> None:
        check(isinstance(self.name, str) and self.name.strip() != "", "model.name",
               "give a preset, a local folder or a hub id", self.name)
        check(self.dtype in MODEL_DTYPE_NAMES, "model.dtype", f"choose one of {', '.join(MODEL_DTYPE_NAMES)}", self.dtype)
        self.cold_experts = ExpertPrecision.parse(self.cold_experts, "model.cold_experts")
        self.hot_experts = ExpertPrecision.parse(self.hot_experts, "model.hot_experts")

    @property
    def quantizes_experts(self) -> bool:
        return self.cold_experts is not ExpertPrecision.KEEP or self.hot_experts is not ExpertPrecision.KEEP


@dataclass
class DataConfig:
    task: TrainTask = TrainTask.GSM8K  # gsm8k | codealpaca | saferpaca | safety | skill
    train: str | None = None           # file path or hub dataset id (default: the task's hub id)
    eval: str | None = None
    limit: int | None = None           # use only the first N training records
    max_length: int = 512
    max_prompt_length: int = 256

    def __post_init__(self) -> None:
        self.task = TrainTask.parse(self.task, "data.task")
        positive_int(self.limit, "data.limit", optional=True)
        positive_int(self.max_length, "data.max_length", minimum=2)
        positive_int(self.max_prompt_length, "data.max_prompt_length")


@dataclass
class ProfileConfig:
    mode: ProfileMode = ProfileMode.WARMUP  # warmup (the paper's LoRA warm-up) | forward | none
    fraction: float = 0.1              # share of the training data profiled
    seed: int = 0
    batch_size: int = 8                # forward mode
    path: str | None = None            # reuse an existing profile.json instead of profiling
    until_stable: bool = False         # stop once every layer's hot set is stable (fraction: the upper bound)
    stable_window: int = 4             # ... unchanged over this many batches (warm-up: optimizer steps)
    stable_jaccard: float = 1.0        # ... "unchanged": Jaccard of hot sets at least this

    def __post_init__(self) -> None:
        self.mode = ProfileMode.parse(self.mode, "profile.mode")
        number(self.fraction, "profile.fraction", low=0.0, high=1.0, low_open=True)
        positive_int(self.batch_size, "profile.batch_size")
        check(isinstance(self.until_stable, bool), "profile.until_stable", "must be true or false", self.until_stable)
        positive_int(self.stable_window, "profile.stable_window")
        number(self.stable_jaccard, "profile.stable_jaccard", low=0.0, high=1.0, low_open=True)


@dataclass
class SelectionConfig:
    strategy: Strategy = Strategy.LAYER  # one of hellora.choices.Strategy (layer | model | cold | random | ...)
    k: int | None = None               # hot experts per layer (default: the router's top-k)
    seed: int = 0
    p: float = 0.5                     # coverage strategy: mass to reach
    path: str | None = None            # train on a saved placement.json (from `hellora select`); no profiling
    reference: str | None = None       # retention strategy: profile.json of the data whose skills should be kept

    def __post_init__(self) -> None:
        self.strategy = Strategy.parse(self.strategy, "selection.strategy")
        positive_int(self.k, "selection.k", optional=True)
        number(self.p, "selection.p", low=0.0, high=1.0, low_open=True)
        if needs_reference(self.strategy) and not self.reference:
            raise HelloraError(f"selection.strategy: {self.strategy!r} ranks experts against a reference profile; "
                               f"set selection.reference to the profile.json of the data whose skills to keep")
        if self.reference and not needs_reference(self.strategy):
            raise HelloraError(f"selection.reference: only strategy {', '.join(sorted(NEEDS_REFERENCE))} reads a "
                               f"reference profile, not {self.strategy!r}")


@dataclass
class TrainConfig:
    learning_rate: float | None = None  # default: the paper's, per task and method (Table 7)
    epochs: float | None = None         # default: the paper's, per task
    batch_size: int | None = None       # global batch; default 128 for PEFT methods, 256 for full fine-tuning
    micro_batch_size: int = 4           # per device and step; gradient accumulation fills the global batch
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: Scheduler = Scheduler.COSINE  # cosine | linear | constant
    max_steps: int | None = None        # stop after this many optimizer steps
    max_grad_norm: float = 1.0
    seed: int = 42
    mixed_precision: MixedPrecision = MixedPrecision.AUTO  # auto (bf16 on CUDA, none on CPU) | bf16 | fp16 | no
    gradient_checkpointing: bool = False
    fsdp: bool = False                  # shard the frozen base over the processes (torch FSDP2, loop/fsdp.py)
    logging_steps: int = 10
    save_steps: int = 50                # checkpoint every N optimizer steps (0: never)
    save_total_limit: int = 2
    report_to: list = field(default_factory=list)  # tensorboard, wandb (through accelerate trackers)

    def __post_init__(self) -> None:
        number(self.learning_rate, "train.learning_rate", low=0.0, low_open=True, optional=True)
        number(self.epochs, "train.epochs", low=0.0, low_open=True, optional=True)
        positive_int(self.batch_size, "train.batch_size", optional=True)
        positive_int(self.micro_batch_size, "train.micro_batch_size")
        number(self.weight_decay, "train.weight_decay", low=0.0)
        number(self.warmup_ratio, "train.warmup_ratio", low=0.0, high=1.0, high_open=True)
        self.lr_scheduler = Scheduler.parse(self.lr_scheduler, "train.lr_scheduler")
        positive_int(self.max_steps, "train.max_steps", optional=True)
        number(self.max_grad_norm, "train.max_grad_norm", low=0.0, low_open=True)
        check(self.mixed_precision in MixedPrecision.values(), "train.mixed_precision",
               f"choose one of {', '.join(MixedPrecision.values())}", self.mixed_precision)
        self.mixed_precision = MixedPrecision(self.mixed_precision)
        positive_int(self.logging_steps, "train.logging_steps")
        positive_int(self.save_steps, "train.save_steps", minimum=0)  # 0: no checkpoints
        positive_int(self.save_total_limit, "train.save_total_limit", minimum=0)  # 0: keep every checkpoint


@dataclass
class EvalConfig:
    enabled: bool = False
    tasks: list[EvalTask] = field(default_factory=list)  # gsm8k, humaneval, hexphi, advbench, skill
    data: dict = field(default_factory=dict)    # task -> benchmark file (GSM8K test defaults to the hub)
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int | None = None           # default: the protocol's (lori: 512)
    num_samples: int | None = None              # HumanEval samples per problem (paper: 20)
    protocol: str = "lori"                      # eval protocol (hellora.eval.protocols; docs/evaluation.md)

    def __post_init__(self) -> None:
        self.tasks = [EvalTask.parse(t, "eval.tasks") for t in self.tasks]
        unknown = sorted(set(self.data) - set(EvalTask.values()))
        check(not unknown, "eval.data", f"keys are eval tasks ({', '.join(EvalTask.values())})", unknown)
        positive_int(self.limit, "eval.limit", optional=True)
        positive_int(self.batch_size, "eval.batch_size")
        positive_int(self.max_new_tokens, "eval.max_new_tokens", optional=True)
        positive_int(self.num_samples, "eval.num_samples", optional=True)


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    adapter: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs/default"

    def to_dict(self) -> dict[str, Any]:
        """Every section as nested dicts (choices still members: `dump_config` writes them as plain text)."""
        return dataclasses.asdict(self)

    @property
    def is_full_finetune(self) -> bool:
        return self.adapter.method is Method.FFT

    def resolved(self) -> "RunConfig":
        """Fill paper defaults (learning rate, epochs, global batch) that the recipe left unset."""
        lr_peft, lr_fft, epochs = PAPER_SCHEDULE.get(self.data.task, (4e-4, 4e-5, 3))
        train = dataclasses.replace(
            self.train,
            learning_rate=self.train.learning_rate if self.train.learning_rate is not None
            else (lr_fft if self.is_full_finetune else lr_peft),
            epochs=float(self.train.epochs if self.train.epochs is not None else epochs),
            batch_size=self.train.batch_size if self.train.batch_size is not None
            else PAPER_BATCH["fft" if self.is_full_finetune else "peft"],
        )
        return dataclasses.replace(self, train=train)


SECTIONS = {f.name: f.type for f in fields(RunConfig)}


SECTION_CLASSES: dict[str, type[Any]] = {
    "model": ModelConfig, "data": DataConfig, "profile": ProfileConfig, "selection": SelectionConfig,
    "adapter": AdapterConfig, "train": TrainConfig, "eval": EvalConfig}


def _options(annotation: object) -> list[str]:
    """A field annotation's alternatives as bare names: "list[EvalTask] | None" -> ["list", "None"]."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    return [option.strip().split("[", 1)[0] for option in text.split("|")]


def _shown(option: str) -> str:
    """An alternative as a user reads it: a choice lists its values, other types keep their name."""
    return f"one of {', '.join(CHOICES[option].values())}" if option in CHOICES else option


def _coerced(value: Any, option: str) -> tuple[bool, Any]:
    """(whether `value` fits the type named `option`, the value to keep): ints widen to float, a lone string to a
    one-item list; a choice's text is kept as typed (the section's `__post_init__` parses it into a member)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if option == "bool" and isinstance(value, bool):
        return True, value
    if option == "int" and number and isinstance(value, int):
        return True, value
    if option == "float" and number:
        return True, float(value)
    if (option == "str" or option in CHOICES) and isinstance(value, str):
        return True, value
    if option in ("list", "dict") and isinstance(value, {"list": list, "dict": dict}[option]):
        return True, value
    if option == "list" and isinstance(value, str):
        return True, [value]
    return False, None


def _check_type(value: Any, annotation: object, where: str) -> Any:
    """Coerce/validate a YAML value against a dataclass field annotation (str, int, float, bool, list, dict, a
    choice, | None), so a wrong type is named at its key before the section's own checks run."""
    options = _options(annotation)
    if value is None:
        if "None" in options:
            return None
        raise HelloraError(f"{where}: must not be empty")
    for option in options:
        fits, kept = _coerced(value, option)
        if fits:
            return kept
    raise HelloraError(f"{where}: expected {' | '.join(_shown(o) for o in options)}, got {value!r}")


def _build_section(name: str, values: Any, where: str, sources: dict[str, str] | None = None) -> Any:
    """One section's dataclass from its raw mapping; every error names where the bad key or value was written."""
    cls = SECTION_CLASSES[name]
    sources = sources or {}
    if not isinstance(values, dict):
        raise HelloraError(f"{sources.get(name, where)}: section {name!r} must be a mapping of keys to values")
    if hasattr(cls, "upgrade_keys"):  # renamed keys read under their new names
        origin = {key: sources.get(f"{name}.{key}", sources.get(name, where)) for key in values}
        values = cls.upgrade_keys(values, lambda key: f"{origin[key]}: {name}")
    known = {f.name: f for f in fields(cls)}
    for key in values:
        if key not in known:
            raise HelloraError(f"{sources.get(f'{name}.{key}', where)}: unknown key {name}.{key}; "
                               f"known keys: {', '.join(sorted(known))}")
    typed = {key: _check_type(value, known[key].type, f"{sources.get(f'{name}.{key}', where)}: {name}.{key}")
             for key, value in values.items()}
    try:
        return cls(**typed)
    except HelloraError as e:
        field_name = str(e).split(":", 1)[0].strip()  # section checks start their message with the field
        raise HelloraError(f"{sources.get(field_name, where)}: {e}") from None


def config_from_dict(data: Any, where: str = "config", sources: dict[str, str] | None = None) -> RunConfig:
    """Raw recipe dict -> validated `RunConfig`. `sources` maps dotted keys to where their value was written
    ("recipe r.yaml line 7", "override train.learning_rate=-1"), used in error messages instead of `where`."""
    if not isinstance(data, dict):
        raise HelloraError(f"{where}: a recipe must be a YAML mapping of sections")
    sources = sources or {}
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise HelloraError(f"{sources.get(unknown[0], where)}: unknown section {unknown[0]!r}; "
                           f"sections: {', '.join(SECTIONS)}")
    kwargs: dict[str, Any] = {}
    for name, values in data.items():
        if name == "output_dir":
            kwargs[name] = _check_type(values, "str", f"{sources.get(name, where)}: output_dir")
        else:
            kwargs[name] = _build_section(name, values or {}, where, sources)
    return RunConfig(**kwargs)


RECIPE_HINT = "see recipes/ for examples"


def _check_override(parts: list[str], value: Any, item: str) -> Any:
    """A run override's key must name a section field (`adapter.r`) or `output_dir` (stored as text)."""
    if parts == ["output_dir"]:
        return value if value is None else str(value)
    if len(parts) < 2 or not all(parts):
        raise HelloraError(f"override {item!r}: key must be section.name (e.g. adapter.r=16) or output_dir")
    if parts[0] not in SECTIONS or parts[0] == "output_dir":
        raise HelloraError(f"override {item!r}: unknown section {parts[0]!r}; sections: {', '.join(SECTIONS)}")
    return value


RUN_OVERRIDES = OverrideRules(check=_check_override, example="train.epochs=1")


def apply_overrides(data: dict | None, overrides: Sequence[str], sources: dict[str, str] | None = None) -> dict:
    """Apply `section.key=value` strings (YAML-typed values) to a raw recipe dict (copied).

    Deeper keys reach into mapping fields: `model.overrides.num_hidden_layers=2`, `eval.data.gsm8k=PATH`.
    When `sources` is given, each overridden dotted key (and its field) is recorded there as "override ITEM".
    """
    return apply_key_values(data, overrides, rules=RUN_OVERRIDES, sources=sources)


def load_run_config(path: str | Path | None, overrides: Sequence[str] = ()) -> RunConfig:
    """Recipe file (or defaults when None) + overrides -> validated `RunConfig` (paper defaults not yet filled).

    Errors name where the bad value was written: `recipe r.yaml line 7: train.learning_rate: ...` or
    `override train.learning_rate=-1: train.learning_rate: ...`.
    """
    sources: dict[str, str] = {}
    if path:
        data = read_yaml(path, "recipe", hint=RECIPE_HINT, overrides=overrides, rules=RUN_OVERRIDES, sources=sources)
    else:
        data = apply_overrides({}, overrides, sources)
    return config_from_dict(data, where=f"recipe {path}" if path else "config", sources=sources)


def _plain(value: Any) -> Any:
    """Enum members (hellora.choices) as their plain strings, so YAML/JSON stay plain text."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, str) and type(value) is not str:
        return str(value)
    return value


def dump_config(config: RunConfig) -> str:
    """The config.yaml text of a run: sections in field order, choices as their plain strings (so the file reads
    back as the recipe it came from, and its bytes do not depend on how a member is represented)."""
    return yaml.safe_dump(_plain(config.to_dict()), sort_keys=False)
