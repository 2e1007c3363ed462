"""Where everything of a study lives under its output folder: one place for the layout, so the runs that write a
file and the summary, figures and progress count that read it cannot drift apart.

    bases/seed{B}/                              a pretrained base (+ profiles/{skill}.json)
    {target}/base{B}/warmup/s{S}-f{F}.json      warm-up profile of fine-tune seed S on fraction F of the data
    {target}/tune/{arm}/lr{LR}.json, chosen.json  the validation search of an arm's learning rate
    {target}/runs/{arm}/b{B}-s{S}/              one final run (study_run.json written last)
"""

from __future__ import annotations

from pathlib import Path


def base_folder(out: Path, base_seed: int) -> Path:
    return out / "bases" / f"seed{base_seed}"


def warmup_file(out: Path, target: str, base_seed: int, ft_seed: int, fraction: float) -> Path:
    return out / target / f"base{base_seed}" / "warmup" / f"s{ft_seed}-f{fraction:g}.json"


def tune_file(out: Path, target: str, arm: str, lr: float) -> Path:
    return out / target / "tune" / arm / f"lr{lr:g}.json"


def chosen_file(out: Path, target: str, arm: str) -> Path:
    return out / target / "tune" / arm / "chosen.json"


def run_folder(out: Path, target: str, arm: str, base_seed: int, ft_seed: int) -> Path:
    return out / target / "runs" / arm / f"b{base_seed}-s{ft_seed}"
