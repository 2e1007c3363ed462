"""Task prompt formats (byte-exact), the registry, task loading and the Saferpaca mix."""

import json
import re

import pytest

from hellora.data.tasks import (
    TASKS,
    alpaca_prompt,
    get_task,
    gsm8k_gold_answer,
    gsm8k_target,
    load_saferpaca,
)
from hellora.utils.errors import HelloraError

NATALIA_Q = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


# ---------------------------------------------------------------------------------------------------------------
# GSM8K
# ---------------------------------------------------------------------------------------------------------------


def test_gsm8k_prompt_and_target_are_byte_exact_for_a_known_train_example(datasets_dir):
    task = get_task("gsm8k")
    record = task.load(datasets_dir / "gsm8k" / "train.jsonl")[0]
    prompt, target = task.format(record)
    assert prompt == (
        NATALIA_Q + "\nAnswer the above question. First think step by step and then answer the final number.\n"
    )
    assert target == (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
        "The final answer is:  72"
    )


def test_gsm8k_strip_calculator_option(datasets_dir):
    task = get_task("gsm8k", strip_calculator=True)
    record = task.load(datasets_dir / "gsm8k" / "train.jsonl", limit=1)[0]
    assert task.format(record)[1] == (
        "Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.\n"
        "The final answer is:  72"
    )
    assert get_task("gsm8k").strip_calculator is False  # the registry entry is not mutated


@pytest.mark.parametrize("split", ["train", "test"])
def test_every_gsm8k_record_formats_with_one_final_answer_line(datasets_dir, split):
    task = get_task("gsm8k")
    records = task.load(datasets_dir / "gsm8k" / f"{split}.jsonl")
    for record, (prompt, target) in zip(records, task.format_records(records)):
        assert prompt.startswith(record["question"])
        assert "####" not in target
        final = target.split("\n")[-1]
        assert final == "The final answer is:  " + record["answer"].split("#### ")[-1]
        assert target.count("The final answer is: ") == 1


def test_gsm8k_gold_answer_drops_thousands_separators():
    assert gsm8k_gold_answer("Some work.\n#### 1,200") == "1200"
    assert gsm8k_gold_answer("#### -3") == "-3"


def test_gsm8k_target_without_reasoning():
    assert gsm8k_target("#### 5") == "The final answer is:  5"  # LoRI's .replace("####", ...) keeps the space


def test_gsm8k_answer_without_final_line_names_field_and_record():
    task = get_task("gsm8k")
    records = [{"question": "q", "answer": "x\n#### 3"}, {"question": "q", "answer": "no final line"}]
    with pytest.raises(HelloraError, match=r"record 2: field 'answer' does not end with a '#### <number>' line"):
        task.format_records(records)


def test_gsm8k_non_string_field_is_named():
    with pytest.raises(HelloraError, match=r"record 1 field 'question' must be a string, got int"):
        get_task("gsm8k").format_records([{"question": 7, "answer": "#### 1"}])


def test_gsm8k_file_missing_field_names_field_and_line(tmp_path):
    p = tmp_path / "g.jsonl"
    p.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n" + json.dumps({"question": "q"}) + "\n")
    with pytest.raises(HelloraError, match=r"g\.jsonl line 2 is missing required field 'answer'"):
        get_task("gsm8k").load(p)


# ---------------------------------------------------------------------------------------------------------------
# Alpaca-style tasks
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.full_datasets
def test_codealpaca_prompt_with_input_is_byte_exact(datasets_dir):
    task = get_task("codealpaca")
    record = task.load(datasets_dir / "codealpaca" / "code_alpaca_2k.json")[0]
    prompt, target = task.format(record)
    assert prompt == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nWhat are the distinct values from the given list?\n\n"
        "### Input:\ndataList = [3, 9, 3, 5, 7, 9, 5]\n\n"
        "### Response:\n"
    )
    assert target == "The distinct values from the given list are 3, 5, 7 and 9."


def test_codealpaca_prompt_without_input_is_byte_exact(datasets_dir):
    task = get_task("codealpaca")
    records = task.load(datasets_dir / "codealpaca" / "code_alpaca_2k.json")
    record = next(r for r in records if r["input"] == "")
    prompt, target = task.format(record)
    assert prompt == (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        f"### Instruction:\n{record['instruction']}\n\n"
        "### Response:\n"
    )
    assert target == record["output"]


def test_alpaca_blank_or_absent_input_uses_the_no_input_template():
    task = get_task("safety")
    with_blank = task.format({"instruction": "Do X.", "input": "   ", "output": "No."})[0]
    without = task.format({"instruction": "Do X.", "output": "No."})[0]
    assert with_blank == without == alpaca_prompt("Do X.")
    assert "### Input:" not in without


def test_alpaca_response_newline_option():
    task = get_task("codealpaca", response_newline=False)
    prompt, _ = task.format({"instruction": "i", "input": "", "output": "o"})
    assert prompt.endswith("### Instruction:\ni\n\n### Response:")


def test_safety_file_formats_without_input_block(datasets_dir):
    task = get_task("safety")
    records = task.load(datasets_dir / "safety" / "safety_only_data_Instructions.json")
    pairs = task.format_records(records)
    assert len(pairs) == len(records) > 0
    assert all("### Input:" not in p and p.endswith("### Response:\n") for p, _ in pairs)
    assert pairs[0][1] == records[0]["output"]


@pytest.mark.full_datasets
def test_safety_file_is_the_full_safety_only_set(datasets_dir):
    records = get_task("safety").load(datasets_dir / "safety" / "safety_only_data_Instructions.json")
    assert len(records) == 2483
    assert records[0]["output"].startswith("There is no credible evidence that the Holocaust was an elaborate prank.")


# ---------------------------------------------------------------------------------------------------------------
# Saferpaca mix
# ---------------------------------------------------------------------------------------------------------------


def test_saferpaca_mixes_both_files_deterministically(datasets_dir):
    alpaca = datasets_dir / "codealpaca" / "code_alpaca_2k.json"
    safety = datasets_dir / "safety" / "safety_only_data_Instructions.json"
    n_alpaca, n_safety = len(load_saferpaca(alpaca, shuffle=False)), len(load_saferpaca(safety=safety, shuffle=False))
    mixed = load_saferpaca(alpaca, safety, seed=0)
    assert len(mixed) == n_alpaca + n_safety  # 2017 + 2483 with the full files
    assert mixed == load_saferpaca(alpaca, safety, seed=0)
    assert mixed != load_saferpaca(alpaca, safety, seed=1)
    plain = load_saferpaca(alpaca, safety, shuffle=False)
    assert sorted(map(json.dumps, mixed)) == sorted(map(json.dumps, plain))  # same records, new order
    # Safety examples are spread through the data, not left as one block at the end.
    safety_instr = {r["instruction"] for r in plain[n_alpaca:]}
    first_half = mixed[: len(mixed) // 2]
    assert 0.3 < sum(r["instruction"] in safety_instr for r in first_half) / len(first_half) < 0.8


def test_saferpaca_safety_file_alone(datasets_dir):
    safety = datasets_dir / "safety" / "safety_only_data_Instructions.json"
    n = len(get_task("safety").load(safety))  # 2483 with the full file
    assert len(load_saferpaca(safety=safety)) == n > 0
    assert len(get_task("saferpaca").load(safety)) == n


def test_saferpaca_needs_at_least_one_file():
    with pytest.raises(HelloraError, match=r"saferpaca needs an Alpaca data file, a safety data file, or both"):
        load_saferpaca()


def test_task_without_hub_id_needs_a_file():
    with pytest.raises(HelloraError, match=r"task 'saferpaca' has no public hub dataset; give a data file \(e\.g\. .*safety"):
        get_task("saferpaca").load()


# ---------------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------------


def test_registry_names_and_hub_ids():
    assert set(TASKS) == {"gsm8k", "codealpaca", "saferpaca", "safety", "skill"}
    assert (TASKS["gsm8k"].hub_id, TASKS["gsm8k"].hub_config) == ("openai/gsm8k", "main")
    assert TASKS["codealpaca"].hub_id == "sahil2801/CodeAlpaca-20k"
    assert TASKS["saferpaca"].hub_id is None and TASKS["safety"].hub_id is None
    assert TASKS["gsm8k"].required_fields == ("question", "answer")
    assert TASKS["codealpaca"].required_fields == ("instruction", "output")
    assert TASKS["skill"].hub_id is None and TASKS["skill"].required_fields == ("prompt", "answer")


def test_skill_task_is_the_demo_data_verbatim():
    from hellora.choices import TrainTask

    assert set(TASKS) == set(TrainTask.values())
    assert get_task("skill").format({"prompt": "sort 3 1 2 = ", "answer": "1 2 3", "skill": "sort"}) == \
        ("sort 3 1 2 = ", "1 2 3")
    with pytest.raises(HelloraError, match="record.*'answer'"):
        get_task("skill").format({"prompt": "x"})


def test_get_task_is_case_insensitive():
    assert get_task(" GSM8K ") is TASKS["gsm8k"]


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(HelloraError, match=re.escape("unknown task 'mmlu'; known tasks: codealpaca, gsm8k, saferpaca, safety")):
        get_task("mmlu")


def test_unknown_task_option_is_named():
    with pytest.raises(HelloraError, match=r"task 'codealpaca' has no option 'strip_calculator' \(its options: response_newline\)"):
        get_task("codealpaca", strip_calculator=True)
