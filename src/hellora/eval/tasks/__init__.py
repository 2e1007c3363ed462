"""Evaluation tasks as objects, one per benchmark: load, prompts and sampling per protocol, score, headline.

Mirrors `hellora.data.tasks` (training formats). Adding a benchmark: a member of `hellora.choices.EvalTask`, a
module here with an `EvalTaskSpec` subclass and its protocols, and one line in `EVAL_TASKS`.
"""

from __future__ import annotations

from hellora.eval.tasks.base import EvalTaskSpec
from hellora.eval.tasks.gsm8k import Gsm8kEval
from hellora.eval.tasks.humaneval import HumanEvalEval
from hellora.eval.tasks.safety import SafetyEval
from hellora.eval.tasks.skill import SkillEval
from hellora.choices import EvalTask

__all__ = ["EVAL_TASKS", "EvalTaskSpec", "get_eval_task"]

EVAL_TASKS: dict[EvalTask, EvalTaskSpec] = {
    EvalTask.GSM8K: Gsm8kEval(),
    EvalTask.HUMANEVAL: HumanEvalEval(),
    EvalTask.HEXPHI: SafetyEval(EvalTask.HEXPHI),
    EvalTask.ADVBENCH: SafetyEval(EvalTask.ADVBENCH),
    EvalTask.SKILL: SkillEval(),
}


def get_eval_task(name: str, field: str = "--task") -> EvalTaskSpec:
    """The task object for `name`, or one error naming `field` and the valid tasks."""
    return EVAL_TASKS[EvalTask.parse(name, field)]
