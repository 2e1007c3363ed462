"""How a run ends: the last line of `hellora train`, and runs that trained nothing useful ending `degenerate`."""

import json

from hellora.cli import main
from hellora.loop.training import STALL_STEPS, StallWatch, training_health
from tests.conftest import GSM8K

SHORT = "{batch_size: 8, micro_batch_size: 4, max_steps: 12, save_steps: 0, logging_steps: 1, learning_rate: %s}"
DATA = "{task: gsm8k, train: %s, limit: 24, max_length: 48, max_prompt_length: 32}" % GSM8K


def _watch(losses, norms):
    watch = StallWatch()
    for step, (loss, norm) in enumerate(zip(losses, norms), start=1):
        watch.update(step, loss, norm)
    return watch


def test_training_health_names_the_stall_or_the_blow_up():
    assert training_health(_watch([3.0, 2.5, 2.0, 1.8], [1.0, 0.9, 0.8, 0.7]), 4) == ("ok", None)
    health, why = training_health(_watch([4.8, 4.9] + [4.6] * 10, [0.9, 1.3] + [0.0] * 10), 12)
    assert health == "degenerate" and "gradient norm was 0 for the last 10 of 12 steps" in why
    health, why = training_health(_watch([2.0] * 30, [0.5] * 30), 30)
    assert health == "degenerate" and "loss did not move" in why
    health, why = training_health(_watch([2.0, 3.0, 9.0], [1.0, 5.0, 40.0]), 3)
    assert health == "diverged" and "rose from 2 to 9" in why
    # a stall in the middle that the run recovered from is not the end state
    recovered = _watch([2.0] * (STALL_STEPS + 1) + [1.5, 1.2, 1.0], [0.0] * (STALL_STEPS + 1) + [0.3, 0.2, 0.1])
    assert training_health(recovered, STALL_STEPS + 4) == ("ok", None)


def test_a_huge_learning_rate_ends_degenerate_with_a_non_zero_exit(write_recipe, tmp_path, capsys):
    recipe = write_recipe(out="blown", train=SHORT % "1.0e+6", adapter="{method: lora, r: 4, alpha: 8}", data=DATA)
    assert main(["train", str(recipe), "--no-progress"]) == 3
    out, err = capsys.readouterr()
    status = json.loads((tmp_path / "blown" / "run.json").read_text())
    assert status["status"] == "degenerate" and status["completed"] is True
    assert "gradient norm was 0" in status["reason"] and "the run is degenerate" in err
    last = out.strip().splitlines()[-1]
    assert last.startswith(f"degenerate: {tmp_path / 'blown'}") and f"adapter={tmp_path / 'blown' / 'adapter'}" in last
    # the same command again: the run is complete, so it is refused as finished, not trained again
    assert main(["train", str(recipe), "--no-progress"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    # and the report flags it
    assert main(["report", str(tmp_path / "blown"), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    assert "degenerate" in (tmp_path / "rep" / "report.md").read_text()


def test_the_last_line_gives_the_loss_to_4_digits_the_eval_score_and_the_adapter(write_recipe, tmp_path, capsys,
                                                                                 caplog):
    skill = tmp_path / "skill.jsonl"
    skill.write_text("".join(json.dumps({"prompt": f"{i}+1=", "answer": str(i + 1)}) + "\n" for i in range(4)))
    recipe = write_recipe(out="ok", train=SHORT % "0.002", data=DATA,  # hellora: a warm-up profile of 8 examples
                          eval="{enabled: true, tasks: [skill], data: {skill: %s}, max_new_tokens: 4}" % skill)
    with caplog.at_level("INFO", logger="hellora"):
        assert main(["train", str(recipe), "--no-progress"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    steps = json.loads((tmp_path / "ok" / "run.json").read_text())["steps"]
    loss = steps["train"]["final_loss"]
    # the data summary came before training and is recorded; the warm-up's small profile was warned about
    assert steps["data"]["examples"] == 24 and steps["data"]["truncated_answers"] > 0  # max_length 48 cuts GSM8K
    assert "data: 24 examples;" in caplog.text and "answers truncated by max_length 48" in caplog.text
    assert "the profile covers only" in caplog.text
    assert last.startswith(f"finished: {tmp_path / 'ok'}  steps=12  final loss={loss:#.4g}  ")
    assert "skill accuracy=" in last and last.endswith(f"adapter={tmp_path / 'ok' / 'adapter'}")
    assert len(f"{loss:#.4g}".replace(".", "").lstrip("0")) == 4
