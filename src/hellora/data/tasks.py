"""The fine-tuning tasks of the HELLoRA paper: how a raw record becomes a (prompt, target) pair.

The paper fine-tunes on GSM8K (math), CodeAlpaca (code) and Saferpaca (safety). Prompt wording changes what
the model learns and how its answers are scored, so every run must build prompts the same way; this module
holds the only copy of each template and a registry, `TASKS`, that training, evaluation and the CLI share.

Formats (the paper text does not print its templates; these follow the project's specification):
  * GSM8K (zero-shot chain of thought). Prompt: the question, then
    "\\nAnswer the above question. First think step by step and then answer the final number.\\n".
    Target: the reference solution with "####" replaced by "The final answer is: " exactly as LoRI does
    (`answer.replace("####", ...)`, so the final line reads "The final answer is:  N" with two spaces), so the
    model learns the answer phrase LoRI's scorer looks for. GSM8K's "<<48/2=24>>" calculator annotations are kept by
    default (nothing in the paper says they were removed); `get_task("gsm8k", strip_calculator=True)` drops them.
  * CodeAlpaca, Saferpaca, safety-only: the Alpaca instruction template, with an "### Input:" block only when
    the record's `input` is non-blank. Target: `output`.

A task never adds BOS/EOS; `hellora.data.tokenize` does that, so the text here is tokenizer-independent.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from hellora.data.loading import load_records
from hellora.utils.errors import HelloraError

# ------------------------------------------------------------------------------------------------------------
# Templates
# ------------------------------------------------------------------------------------------------------------

GSM8K_INSTRUCTION = "\nAnswer the above question. First think step by step and then answer the final number.\n"
GSM8K_ANSWER_PREFIX = "The final answer is: "

ALPACA_PREAMBLE_NO_INPUT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
)
ALPACA_PREAMBLE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
)

_FINAL_LINE = re.compile(r"^####\s*(?P<answer>.*?)\s*$")
_CALCULATOR = re.compile(r"<<[^<>]*>>")

#: Where the repository's development copies live, relative to the project root (see shared/datasets/README.md).
SHARED_DATASETS = "../shared/datasets"


def gsm8k_prompt(question: str) -> str:
    """The zero-shot GSM8K prompt: the question followed by the step-by-step instruction."""
    return f"{question}{GSM8K_INSTRUCTION}"


def gsm8k_target(answer: str, *, strip_calculator: bool = False) -> str:
    """A GSM8K reference solution with "####" replaced by "The final answer is: " (LoRI's exact format).

    "...\n#### 72" becomes "...\nThe final answer is:  72" (GSM8K's own space after "####" is kept). Raises
    `HelloraError` naming field 'answer' when the last non-blank line is not a `####` line, since such a record
    cannot be scored either.
    """
    lines = answer.rstrip().split("\n")
    match = _FINAL_LINE.match(lines[-1]) if lines else None
    if match is None or not match.group("answer"):
        raise HelloraError("field 'answer' does not end with a '#### <number>' line (is this GSM8K data?)")
    if strip_calculator:
        answer = _CALCULATOR.sub("", answer)
    return answer.replace("####", GSM8K_ANSWER_PREFIX)


def gsm8k_gold_answer(answer: str) -> str:
    """The number after `####` in a GSM8K solution, thousands separators removed ("1,200" -> "1200").

    Evaluation compares this with the number a model writes after "The final answer is:".
    """
    match = _FINAL_LINE.match(answer.rstrip().split("\n")[-1])
    if match is None or not match.group("answer"):
        raise HelloraError("field 'answer' does not end with a '#### <number>' line (is this GSM8K data?)")
    return match.group("answer").replace(",", "")


def alpaca_prompt(instruction: str, input: str = "", *, response_newline: bool = True) -> str:
    """The Alpaca instruction prompt; the "### Input:" block appears only when `input` is not blank.

    `response_newline=True` ends the prompt with "### Response:\\n" (the form this project specifies, as in
    alpaca-lora); Stanford Alpaca's original code ends at "### Response:" with no newline.
    """
    end = "### Response:\n" if response_newline else "### Response:"
    if input and input.strip():
        return f"{ALPACA_PREAMBLE_INPUT}### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n{end}"
    return f"{ALPACA_PREAMBLE_NO_INPUT}### Instruction:\n{instruction}\n\n{end}"


# ------------------------------------------------------------------------------------------------------------
# Task registry
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One fine-tuning task: which fields a record needs, how to format it, and where its data usually lives.

    `local_hints` maps a split name to the development copy's path (relative to the project root); it is only
    shown in messages, never read implicitly, because a relative path silently depends on the working folder.
    """

    name: str
    description: str = ""
    required_fields: tuple[str, ...] = ()
    hub_id: str | None = None
    hub_config: str | None = None
    local_hints: Mapping[str, str] = field(default_factory=dict)

    def format(self, record: Mapping[str, Any], where: str = "record") -> tuple[str, str]:
        """Return `(prompt, target)` for one record; `where` names the record in error messages."""
        raise NotImplementedError

    def format_records(self, records: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        """Format every record; an error names the 1-based record number."""
        return [self.format(r, where=f"record {i}") for i, r in enumerate(records, start=1)]

    def load(
        self, source: str | os.PathLike | None = None, *, split: str = "train", limit: int | None = None
    ) -> list[dict]:
        """Load this task's records from `source` (file or hub id), or from its hub id when `source` is None."""
        if source is None:
            if self.hub_id is None:
                hint = self.local_hints.get(split)
                raise HelloraError(
                    f"task '{self.name}' has no public hub dataset; give a data file"
                    + (f" (e.g. {hint})" if hint else "")
                )
            try:
                return load_records(self.hub_id, required_fields=self.required_fields, split=split,
                                    hub_config=self.hub_config, limit=limit)
            except HelloraError as e:
                hint = self.local_hints.get(split)
                raise HelloraError(f"{e}" + (f" (a local copy may be at {hint})" if hint else "")) from None
        return load_records(source, required_fields=self.required_fields, split=split,
                            hub_config=self.hub_config if os.fspath(source) == self.hub_id else None, limit=limit)

    def _text(self, record: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
        if not isinstance(record, Mapping):
            raise HelloraError(f"{where}: expected an object with fields, got {type(record).__name__}")
        value = record.get(key, default)
        if value is None:
            raise HelloraError(f"{where} is missing required field '{key}' for task '{self.name}'")
        if not isinstance(value, str):
            raise HelloraError(f"{where} field '{key}' must be a string, got {type(value).__name__}")
        return value


@dataclass(frozen=True)
class Gsm8kTask(Task):
    """GSM8K: question -> step-by-step solution ending in "The final answer is: N"."""

    strip_calculator: bool = False

    def format(self, record: Mapping[str, Any], where: str = "record") -> tuple[str, str]:
        question = self._text(record, "question", where)
        answer = self._text(record, "answer", where)
        try:
            target = gsm8k_target(answer, strip_calculator=self.strip_calculator)
        except HelloraError as e:
            raise HelloraError(f"{where}: {e}") from None
        return gsm8k_prompt(question), target


@dataclass(frozen=True)
class AlpacaTask(Task):
    """Alpaca-format instruction tuning: (instruction, optional input) -> output."""

    response_newline: bool = True

    def format(self, record: Mapping[str, Any], where: str = "record") -> tuple[str, str]:
        instruction = self._text(record, "instruction", where)
        input_text = self._text(record, "input", where, default="")
        output = self._text(record, "output", where)
        return alpaca_prompt(instruction, input_text, response_newline=self.response_newline), output


@dataclass(frozen=True)
class SkillTask(Task):
    """The demo's synthetic skills (`hellora.data.skills`, saved by `hellora demo` as JSONL): prompt -> answer,
    verbatim, exactly as the demo trains on them."""

    def format(self, record: Mapping[str, Any], where: str = "record") -> tuple[str, str]:
        return self._text(record, "prompt", where), self._text(record, "answer", where)


_ALPACA_FIELDS = ("instruction", "output")  # `input` is optional: the safety data and many Alpaca dumps omit it

TASKS: dict[str, Task] = {
    "gsm8k": Gsm8kTask(
        name="gsm8k",
        description="GSM8K grade-school math, zero-shot chain of thought (paper: fine-tune on train, score test)",
        required_fields=("question", "answer"),
        hub_id="openai/gsm8k",
        hub_config="main",
        local_hints={"train": f"{SHARED_DATASETS}/gsm8k/train.jsonl", "test": f"{SHARED_DATASETS}/gsm8k/test.jsonl"},
    ),
    "codealpaca": AlpacaTask(
        name="codealpaca",
        description="CodeAlpaca code instructions, Alpaca template (paper: evaluated on HumanEval)",
        required_fields=_ALPACA_FIELDS,
        hub_id="sahil2801/CodeAlpaca-20k",
        local_hints={"train": f"{SHARED_DATASETS}/codealpaca/code_alpaca_2k.json"},
    ),
    "saferpaca": AlpacaTask(
        name="saferpaca",
        description="Saferpaca = Alpaca + safety instructions (Bianchi et al. 2023); user-supplied file(s)",
        required_fields=_ALPACA_FIELDS,
        local_hints={"train": f"{SHARED_DATASETS}/safety/safety_only_data_Instructions.json"},
    ),
    "safety": AlpacaTask(
        name="safety",
        description="the safety-only part of Saferpaca (refusals to harmful instructions), Alpaca template",
        required_fields=_ALPACA_FIELDS,
        local_hints={"train": f"{SHARED_DATASETS}/safety/safety_only_data_Instructions.json"},
    ),
    "skill": SkillTask(
        name="skill",
        description="a synthetic skill of the demo (copy, upper, reverse, sort, max): JSONL of {prompt, answer}",
        required_fields=("prompt", "answer"),
        local_hints={"train": "hellora-demo/data/sort-train.jsonl"},
    ),
}


def get_task(name: str, **options: Any) -> Task:
    """Look up a task by name (case-insensitive), optionally overriding its options, e.g. strip_calculator=True."""
    key = str(name).strip().lower()
    if key not in TASKS:
        raise HelloraError(f"unknown task '{name}'; known tasks: {', '.join(sorted(TASKS))}")
    task = TASKS[key]
    allowed = {f.name for f in dataclasses.fields(task)} - {f.name for f in dataclasses.fields(Task)}
    for option in options:
        if option not in allowed:
            known = ", ".join(sorted(allowed)) or "none"
            raise HelloraError(f"task '{key}' has no option '{option}' (its options: {known})")
    return dataclasses.replace(task, **options) if options else task


def load_saferpaca(
    alpaca: str | os.PathLike | None = None,
    safety: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    shuffle: bool = True,
) -> list[dict]:
    """Build Saferpaca-style data: Alpaca records mixed with safety records (either file alone also works).

    Saferpaca (Bianchi et al., 2023) is plain Alpaca with a few hundred to a couple of thousand safety
    demonstrations added. The two lists are concatenated and, with `shuffle`, mixed by a seeded shuffle so that
    safety examples are spread through every epoch instead of arriving as one block at the end.
    """
    if alpaca is None and safety is None:
        raise HelloraError("saferpaca needs an Alpaca data file, a safety data file, or both (none given)")
    records: list[dict] = []
    for source in (alpaca, safety):
        if source is not None:
            records.extend(load_records(source, required_fields=_ALPACA_FIELDS))
    if shuffle:
        random.Random(seed).shuffle(records)
    return records
