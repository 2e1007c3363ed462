"""Data for hellora: loading records, the paper's task prompts, tokenization with prompt masking, batching.

The path from a file to a training batch is:
    records = get_task("gsm8k").load("train.jsonl")            # loading.py + tasks.py: validated dict records
    pairs = get_task("gsm8k").format_records(records)          # tasks.py: (prompt, target) text
    features = encode_pairs(tokenizer, pairs)                  # tokenize.py: ids, labels with -100 on the prompt
    batch = PadCollator.for_tokenizer(tokenizer)(features[:8]) # collate.py: padded tensors
`sample_fraction` picks HELLoRA's warm-up subset; `skills.py` and `tiny_tokenizer.py` provide offline synthetic
data and a character tokenizer for tests and the CPU demo. Importing this package does not import transformers.
"""

from hellora.data.collate import PadCollator
from hellora.data.loading import DEFAULT_WARMUP_FRACTION, check_fields, is_hub_id, load_records, sample_fraction
from hellora.data.skills import SKILLS, exact_match, generate_skill_examples, mixture, split_of
from hellora.data.tasks import (
    TASKS,
    AlpacaTask,
    Gsm8kTask,
    Task,
    alpaca_prompt,
    get_task,
    gsm8k_gold_answer,
    gsm8k_prompt,
    gsm8k_target,
    load_saferpaca,
)
from hellora.data.tiny_tokenizer import build_tiny_tokenizer
from hellora.data.tokenize import IGNORE_INDEX, encode_example, encode_pairs, encode_prompt, tokenizer_adds_bos

__all__ = [
    "DEFAULT_WARMUP_FRACTION",
    "IGNORE_INDEX",
    "SKILLS",
    "TASKS",
    "AlpacaTask",
    "Gsm8kTask",
    "PadCollator",
    "Task",
    "alpaca_prompt",
    "build_tiny_tokenizer",
    "check_fields",
    "encode_example",
    "encode_pairs",
    "encode_prompt",
    "exact_match",
    "generate_skill_examples",
    "get_task",
    "gsm8k_gold_answer",
    "gsm8k_prompt",
    "gsm8k_target",
    "is_hub_id",
    "load_records",
    "load_saferpaca",
    "mixture",
    "sample_fraction",
    "split_of",
    "tokenizer_adds_bos",
]
