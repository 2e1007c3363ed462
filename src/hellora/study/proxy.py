"""The proxy study: does hot-expert placement beat LoRA when the experts are really specialised?

Pretrained MoE weights cannot be downloaded here, so the paper's accuracy tables cannot be rerun. Instead:
1. pretrain small OLMoE-architecture MoEs (one per base seed, cached) on a mixture of synthetic skills with the
   load-balancing loss on; the target skills are held out of pretraining or rare in it, and a base that already
   knows a target (a pre-registered threshold on its validation set) is dropped for that target;
2. per (target, base, seed), with data drawn for that cell, every arm (`study/arms.py`) at every learning rate of
   the grid, scored at a few checkpoints on the target and the other skills;
3. summarise into `study.json` with the base as the unit (`study/analysis.py`, `hellora.report.stats`): per arm
   the test score at the cross-fitted lr (mean, std, t-CI over bases), retention at matched target accuracy, the
   forgetting frontier, and the pre-registered primary contrasts (Holm over those only) and secondary ones;
   plus PNG figures and a data folder (`data/`) that `results_doc.py` rebuilds the page from.

    hellora proxy recipes/proxy/cpu.yaml --out runs/proxy-v2

Modules: config.py (StudyConfig), contrasts.py, arms.py, bases.py (pretraining, data, profiles), arm_run.py (one
run), runner.py (the driver), scoring.py, analysis.py, summary.py, figures.py, results_doc.py (docs/results.md).
"""

from __future__ import annotations

from hellora.study.arms import ARMS
from hellora.study.config import StudyConfig
from hellora.study.runner import run_study

ProxyConfig = StudyConfig
METHODS = ARMS  # the arm names a config's `arms` may list
run_proxy = run_study

__all__ = ["ARMS", "METHODS", "ProxyConfig", "StudyConfig", "run_proxy", "run_study"]
