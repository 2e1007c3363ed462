"""Where everything of a study lives under its output folder: one place for the layout, so the runs that write a
file and the summary, figures and progress count that read it cannot drift apart.

    bases/seed{B}/                              a pretrained base (+ profiles/{skill}.json: routing per skill)
    {target}/base{B}/before-s{S}.json           the base's scores before fine-tuning on seed S's data
    {target}/base{B}/profile/s{S}-{name}.json   a routing profile (warm-up fraction, forward counting)
    {target}/runs/{arm}/b{B}-s{S}-lr{LR}/       one run (study_run.json written last)
"""

from __future__ import annotations

from pathlib import Path


def base_folder(out: Path, base_seed: int) -> Path:
    return out / "bases" / f"seed{base_seed}"


def skill_profile_file(out: Path, base_seed: int, skill: str) -> Path:
    return base_folder(out, base_seed) / "profiles" / f"{skill}.json"


def before_file(out: Path, target: str, base_seed: int, ft_seed: int) -> Path:
    return out / target / f"base{base_seed}" / f"before-s{ft_seed}.json"


def warmup_file(out: Path, target: str, base_seed: int, ft_seed: int, fraction: float) -> Path:
    return out / target / f"base{base_seed}" / "profile" / f"s{ft_seed}-warmup{fraction:g}.json"


def forward_file(out: Path, target: str, base_seed: int, ft_seed: int) -> Path:
    return out / target / f"base{base_seed}" / "profile" / f"s{ft_seed}-forward.json"


def run_folder(out: Path, target: str, arm: str, base_seed: int, ft_seed: int, lr: float) -> Path:
    return out / target / "runs" / arm / f"b{base_seed}-s{ft_seed}-lr{lr:g}"
