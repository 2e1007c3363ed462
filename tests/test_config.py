"""A parsed run config holds choice members, never strings; its config.yaml stays the plain text a recipe is."""

import json

import pytest

from hellora.choices import (AdapterInit, EvalTask, ExpertPrecision, MixedPrecision, ProfileMode, Scheduler,
                             Strategy, TrainTask)
from hellora.config import RunConfig, dump_config, load_run_config
from hellora.utils.errors import HelloraError

CHOSEN = ["data.task=codealpaca", "profile.mode=forward", "selection.strategy=random", "train.lr_scheduler=linear",
          "train.mixed_precision=bf16", "adapter.init=random", "eval.tasks=[gsm8k, humaneval]", "model.hot_experts=nf4"]


def _choice_fields(config: RunConfig) -> dict:
    return {"data.task": config.data.task, "profile.mode": config.profile.mode,
            "selection.strategy": config.selection.strategy, "train.lr_scheduler": config.train.lr_scheduler,
            "train.mixed_precision": config.train.mixed_precision, "adapter.init": config.adapter.init,
            "eval.tasks": config.eval.tasks[0], "model.hot_experts": config.model.hot_experts}


@pytest.mark.parametrize("overrides", [["eval.tasks=skill"], CHOSEN], ids=["defaults", "chosen"])
def test_every_choice_field_holds_its_member(overrides):
    config = load_run_config(None, overrides)
    kinds = {"data.task": TrainTask, "profile.mode": ProfileMode, "selection.strategy": Strategy,
             "train.lr_scheduler": Scheduler, "train.mixed_precision": MixedPrecision, "adapter.init": AdapterInit,
             "eval.tasks": EvalTask, "model.hot_experts": ExpertPrecision}
    for name, value in _choice_fields(config).items():
        assert type(value) is kinds[name], name
    assert all(type(t) is EvalTask for t in config.eval.tasks)
    assert _choice_fields(config.resolved()) == _choice_fields(config)  # resolving keeps the members


def test_the_written_config_is_plain_text_and_reads_back_the_same(tmp_path):
    config = load_run_config(None, CHOSEN).resolved()
    text = dump_config(config)
    assert "!!" not in text and "task: codealpaca\n" in text and "- humaneval\n" in text
    assert "init: random\n" in text and "mixed_precision: bf16\n" in text
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    assert dump_config(load_run_config(tmp_path / "config.yaml")) == text


def test_records_written_as_json_hold_the_plain_strings():
    config = load_run_config(None, CHOSEN)
    record = {"mode": config.profile.mode, "tasks": config.eval.tasks, config.selection.strategy: 1}
    assert json.dumps(record) == '{"mode": "forward", "tasks": ["gsm8k", "humaneval"], "random": 1}'


def test_a_choice_of_the_wrong_type_names_the_values_to_choose_from():
    with pytest.raises(HelloraError, match=r"data\.task: expected one of gsm8k, codealpaca, .*got 5"):
        load_run_config(None, ["data.task=5"])
    with pytest.raises(HelloraError, match=r"train\.mixed_precision: choose one of auto, bf16, fp16, no"):
        load_run_config(None, ["train.mixed_precision=fp8"])
