"""Evaluation: generation, named protocols, benchmark tasks, scoring.

* `run`        -- `evaluate_tasks`: generate, save, score, write eval JSON (CLI, pipeline and cross-task alike).
* `protocols`  -- `Protocol`: everything that changes a score, under one name (`lori` is the paper's setup).
* `tasks`      -- one object per benchmark (load, prompt per protocol, score, headline) and the registry.
* `generation` -- batched HF / vLLM generation with a protocol's sampling settings.
* `gsm8k`      -- answer extraction in four columns (lori, robust, lm-eval strict / flexible) and accuracy.
* `passk`      -- the unbiased pass@k estimator.
* `sandbox`    -- runs untrusted model-written Python in a fresh, limited, namespaced process per sample.
* `humaneval`  -- HumanEval functional correctness through the sandbox, pass@k, `_results.jsonl`.
* `safety`     -- refusal rate on HEx-PHI / AdvBench (LoRI's phrases, hellora's keywords, or a judge).
* `lori_safety` -- LoRI's HEx-PHI prompt and refusal-phrase rule.

Submodules are imported lazily by name so that e.g. GSM8K scoring never imports the sandbox or torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "evaluate_tasks",
    "get_eval_task",
    "Protocol",
    "evaluate_humaneval_samples",
    "build_program",
    "load_humaneval_problems",
    "pass_at_k",
    "mean_pass_at_k",
    "score_gsm8k",
    "load_gsm8k_jsonl",
    "evaluate_gsm8k_predictions",
    "score_refusals",
    "load_hexphi",
    "load_advbench",
    "evaluate_refusal_predictions",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
]

_WHERE = {
    "evaluate_tasks": "run",
    "get_eval_task": "tasks",
    "Protocol": "protocols",
    "evaluate_humaneval_samples": "humaneval",
    "build_program": "humaneval",
    "load_humaneval_problems": "humaneval",
    "pass_at_k": "passk",
    "mean_pass_at_k": "passk",
    "score_gsm8k": "gsm8k",
    "load_gsm8k_jsonl": "gsm8k",
    "evaluate_gsm8k_predictions": "gsm8k",
    "score_refusals": "safety",
    "load_hexphi": "safety",
    "load_advbench": "safety",
    "evaluate_refusal_predictions": "safety",
    "Sandbox": "sandbox",
    "SandboxLimits": "sandbox",
    "SandboxResult": "sandbox",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"hellora.eval.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'hellora.eval' has no attribute {name!r}")
