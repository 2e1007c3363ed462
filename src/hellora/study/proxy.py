"""The proxy study: does hot-expert placement beat LoRA when the experts are really specialised?

Pretrained MoE weights cannot be downloaded here, so the paper's accuracy tables cannot be rerun. Instead:
1. pretrain small OLMoE-architecture MoEs (one per base seed, cached) on a mixture of synthetic skills with the
   load-balancing loss on; the target skills are held out of pretraining or rare in it;
2. per target, per arm (the paper's Tables 4, 5, 6, 10 and LoRI arms, full fine-tuning; `study/arms.py`): choose
   the learning rate on a validation split, then fine-tune every (base seed, fine-tune seed) with the same
   rank, steps and data, scoring exact match on >= 200 held-out test prompts and the other skills before/after;
3. summarise into `study.json`: per arm n / mean / std / 95% CI, each of the paper's orderings as a paired test
   (bootstrap CI + Wilcoxon signed-rank) with a verdict, the chosen learning rates, warm-up agreement, routing
   skew, entropy and hot-set drift, forgetting, parameters, adapter FLOPs and throughput; plus PNG figures.

    hellora proxy --config recipes/proxy/cpu.yaml --out runs/proxy-cpu

Modules: config.py (StudyConfig), arms.py (arms and claims), bases.py (pretraining, data, warm-up profiles),
runs.py (one run), runner.py (the driver), scoring.py, summary.py, figures.py, results_doc.py (docs/results.md).
"""

from __future__ import annotations

from hellora.study.arms import ARMS
from hellora.study.config import StudyConfig
from hellora.study.runner import run_study

ProxyConfig = StudyConfig
METHODS = ARMS  # the arm names a config's `arms` may list
run_proxy = run_study

__all__ = ["ARMS", "METHODS", "ProxyConfig", "StudyConfig", "run_proxy", "run_study"]
