"""GSM8K test split: zero-shot chain of thought, greedy, accuracy in four columns (`hellora.eval.gsm8k_scoring`).

Templates:
  gsm8k-zero-shot -- the question, then "\\nAnswer the above question. First think step by step and then answer
                     the final number.\\n" (LoRI's and hellora's training prompt, `hellora.data.gsm8k_prompt`).
  lm-eval         -- lm-eval's "Question: {question}\\nAnswer:", zero-shot here (lm-eval's default is 5-shot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hellora.data import gsm8k_prompt
from hellora.eval.generation import SamplingSettings
from hellora.eval.protocols import Protocol
from hellora.eval.tasks.base import EvalTaskSpec, Judge
from hellora.choices import EvalTask

_LM_EVAL = SamplingSettings(max_new_tokens=256, stop=("Question:", "</s>", "<|im_end|>"))
_LM_EVAL_SOURCE = "lm-evaluation-harness gsm8k.yaml v3.0 filters and generation_kwargs, zero-shot"

PROTOCOLS = {
    "lori": Protocol("lori", "gsm8k-zero-shot", SamplingSettings(max_new_tokens=512, add_special_tokens=False),
                     dtype="float32", scorer="lori",
                     source="LoRI src/eval_model.py + get_datasets.py: no BOS, greedy, 512 new tokens, fp32"),
    "robust": Protocol("robust", "gsm8k-zero-shot", SamplingSettings(max_new_tokens=512), dtype="auto",
                       scorer="robust", source="hellora: the tokenizer's BOS, greedy, 512 new tokens"),
    "lm-eval-strict": Protocol("lm-eval-strict", "lm-eval", _LM_EVAL, dtype="auto", scorer="lm-eval-strict",
                               source=_LM_EVAL_SOURCE),
    "lm-eval-flexible": Protocol("lm-eval-flexible", "lm-eval", _LM_EVAL, dtype="auto", scorer="lm-eval-flexible",
                                 source=_LM_EVAL_SOURCE),
}


class Gsm8kEval(EvalTaskSpec):
    name = EvalTask.GSM8K
    protocols = PROTOCOLS

    def load(self, data: str | None, limit: int | None) -> list[dict]:
        from hellora.data import get_task

        records = get_task("gsm8k").load(data, split="test")
        return [{"question": r["question"], "answer": r["answer"]} for r in records[:limit]]

    def prompt(self, record: Mapping[str, Any], protocol: Protocol) -> str:
        if protocol.template == "lm-eval":
            return f"Question: {record['question']}\nAnswer:"
        return gsm8k_prompt(record["question"])

    def score(self, generations: Path, *, data: str | None, protocol: Protocol, ks: tuple, progress: bool,
              judge: Judge | None = None) -> dict:
        from hellora.eval.gsm8k_scoring import evaluate_gsm8k_predictions

        return evaluate_gsm8k_predictions(generations)

    def headline(self, scores: Mapping[str, Any], protocol: Protocol) -> dict:
        return {"accuracy": scores["accuracy"][protocol.scorer]}
