"""Generation + scoring through `hellora eval` and the pipeline's eval step, on a tiny model."""

import json

from hellora.cli import main
from hellora.eval.generation import SamplingSettings, generate_hf, truncate_at_stop, write_generations
from tests.conftest import DATASETS

GSM8K_TEST = str(DATASETS / "gsm8k/test.jsonl")
HUMANEVAL = str(DATASETS / "humaneval/HumanEval.jsonl.gz")
ADVBENCH = str(DATASETS / "advbench/harmful_behaviors.csv")


def test_truncate_at_stop():
    assert truncate_at_stop("    return 1\ndef g():\n", ("\ndef", "\nclass")) == "    return 1"
    assert truncate_at_stop("abc", ()) == "abc"


def test_greedy_generation_is_left_padded_and_batch_independent(tmp_path):
    from hellora.data import build_tiny_tokenizer
    from hellora.models.tiny import tiny_model

    model, tok = tiny_model("olmoe", vocab_size=104), build_tiny_tokenizer()
    prompts = ["12+7=", "a much longer prompt here ->"]
    settings = SamplingSettings(max_new_tokens=6)
    together = generate_hf(model, tok, prompts, settings, batch_size=2, progress=False)
    alone = [generate_hf(model, tok, [p], settings, batch_size=1, progress=False)[0] for p in prompts]
    assert together == alone and all(len(c) == 1 for c in together)
    path = write_generations(tmp_path / "g.jsonl", [{"id": 1}, {"id": 2}], prompts, together, settings)
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    assert rows[0]["prompt"] == "12+7=" and rows[1]["id"] == 2 and rows[0]["sampling"]["max_new_tokens"] == 6


def test_eval_cli_writes_generations_and_scores(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "ev"
    args = ["eval", "--task", "gsm8k,humaneval,advbench", "--model", str(tiny_model_dir), "--data",
            f"gsm8k={GSM8K_TEST}", "--data", f"humaneval={HUMANEVAL}", "--data", f"advbench={ADVBENCH}",
            "--limit", "2", "--num-samples", "2", "--max-new-tokens", "8", "--out", str(out)]
    assert main(args) == 0
    for task in ("gsm8k", "humaneval", "advbench"):
        report = json.loads((out / f"eval_{task}.json").read_text())
        assert report["examples"] == 2 and (out / f"{task}_generations.jsonl").is_file()
    he = json.loads((out / "eval_humaneval.json").read_text())
    assert he["scores"]["n_samples"] == 4 and "pass@1" in he["scores"]
    assert he["protocol"]["name"] == "lori+custom" and he["protocol"]["timeout"] == 3.0
    assert he["protocol"]["sampling"]["top_k"] == 0 and he["protocol"]["strip_prompt"] is True
    gsm = json.loads((out / "eval_gsm8k.json").read_text())
    assert gsm["protocol"]["dtype"] == "float32" and gsm["model_dtype"] == "float32"  # lori's dtype by default
    assert set(gsm["scores"]["accuracy"]) == {"lori", "robust", "lm-eval-strict", "lm-eval-flexible"}
    assert gsm["headline"] == {"accuracy": gsm["scores"]["accuracy"]["lori"]}
    summary = json.loads((out / "eval.json").read_text())
    assert set(summary["tasks"]) == {"gsm8k", "humaneval", "advbench"} and summary["model"] == str(tiny_model_dir)
    assert main(args) == 2 and "exists" in capsys.readouterr().err  # nothing overwritten


def test_pipeline_eval_step(write_recipe, tmp_path):
    recipe = write_recipe(eval=f"{{enabled: true, tasks: [gsm8k], data: {{gsm8k: {GSM8K_TEST}}}, limit: 2, "
                               f"max_new_tokens: 8}}")
    assert main(["train", str(recipe), "--no-progress"]) == 0
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert "accuracy" in status["steps"]["eval"]["gsm8k"]
    assert (tmp_path / "run" / "eval" / "eval_gsm8k.json").is_file()


def test_cross_task_before_and_after(write_recipe, tmp_path):
    assert main(["train", str(write_recipe()), "--no-progress"]) == 0
    out = tmp_path / "cross"
    base = json.loads((tmp_path / "run" / "adapter" / "hellora_adapter.json").read_text())["base_model"]
    assert main(["eval", "--cross-task", "--task", "gsm8k,advbench", "--model", base,
                 "--adapter", str(tmp_path / "run" / "adapter"),
                 "--data", f"gsm8k={GSM8K_TEST}", "--data", f"advbench={ADVBENCH}", "--limit", "2",
                 "--max-new-tokens", "6", "--out", str(out)]) == 0
    matrix = json.loads((out / "cross_task.json").read_text())["matrix"]
    assert set(matrix) == {"gsm8k", "advbench"} and set(matrix["gsm8k"]) == {"before", "after", "protocol"}
    assert matrix["gsm8k"]["protocol"] == "lori+custom"  # --max-new-tokens changed the protocol's budget
