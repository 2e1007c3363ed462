"""The demo's synthetic skills (copy, upper, reverse, sort, max): greedy completion of each prompt, exact match.

Why: `hellora demo` and `recipes/cpu/` train on these skills, so their own benchmark is what tells a CPU run's
adapter from the base model (GSM8K on a 2-layer toy model only shows that the plumbing works).

Template:
  verbatim -- the record's prompt exactly as the skill task trains on it (`hellora.data.tasks.SkillTask`: no
              template), with the tokenizer's own BOS convention; generation stops at EOS, and any other special
              token generated before it stays in the completion (so it can never pass as a right answer).
Columns:
  exact    -- the completion is the answer, character for character. Training puts EOS right after the answer,
              so this is the demo's teacher-forced exact match (`hellora.study.scoring.score_features`) computed
              by generation instead (tests check the two agree).
  stripped -- equal once leading and trailing whitespace is stripped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from hellora.eval.generation import SamplingSettings
from hellora.eval.protocols import Protocol
from hellora.eval.tasks.base import EvalTaskSpec, Judge
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_text, iter_jsonl
from hellora.choices import EvalTask

PROTOCOLS = {
    "exact": Protocol("exact", "verbatim", SamplingSettings(max_new_tokens=64, skip_special_tokens=False),
                      dtype="auto", scorer="exact",
                      source="hellora demo skills: the prompt as trained, the tokenizer's BOS, greedy, 64 new "
                             "tokens, stop at EOS; special tokens before EOS are kept (an exact match must not "
                             "hide them)"),
}


def score_skill(rows: list[dict]) -> dict:
    """{"accuracy": {"exact", "stripped"}, "n", "items"} of rows holding "completion" and "answer"."""
    items = [{"exact": r["completion"] == r["answer"], "stripped": r["completion"].strip() == r["answer"].strip()}
             for r in rows]
    n = len(items)
    accuracy = {col: (sum(item[col] for item in items) / n if n else 0.0) for col in ("exact", "stripped")}
    return {"accuracy": accuracy, "n": n, "items": items}


class SkillEval(EvalTaskSpec):
    name = EvalTask.SKILL
    protocols = PROTOCOLS
    default_protocol = "exact"
    data_hint = "a JSONL of {prompt, answer}: `hellora demo` writes hellora-demo/data/<skill>-test.jsonl"

    def check_protocol(self, protocol: Protocol) -> None:
        if protocol.sampling.num_samples > 1 or protocol.sampling.do_sample:
            raise HelloraError("num_samples: skill scores one greedy answer per prompt; leave it unset")

    def load(self, data: str | None, limit: int | None) -> list[dict]:
        self.require_data(data)
        from hellora.data import get_task

        records = get_task("skill").load(data, split="test", limit=limit)
        return [{"prompt": r["prompt"], "answer": r["answer"], **({"skill": r["skill"]} if "skill" in r else {})}
                for r in records]

    def prompt(self, record: Mapping[str, Any], protocol: Protocol) -> str:
        return record["prompt"]

    def score(self, generations: Path, *, data: str | None, protocol: Protocol, ks: tuple, progress: bool,
              judge: Judge | None = None) -> dict:
        rows = [row for _, row in iter_jsonl(generations, "skill generations")]
        summary = score_skill(rows)
        lines = [json.dumps({"prompt": r["prompt"], "answer": r["answer"], "completion": r["completion"], **item},
                            ensure_ascii=False) for r, item in zip(rows, summary["items"])]
        results = Path(f"{generations}_results.jsonl")
        atomic_write_text(results, "\n".join(lines) + ("\n" if lines else ""))
        return {"accuracy": summary["accuracy"], "n": summary["n"], "results_path": str(results)}

    def headline(self, scores: Mapping[str, Any], protocol: Protocol) -> dict:
        return {"accuracy": scores["accuracy"][protocol.scorer]}
