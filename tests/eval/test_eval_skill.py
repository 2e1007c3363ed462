"""The demo's skills as an eval task: greedy generation scored by exact match, held to the teacher-forced exact
match the demo and the study report (`hellora.study.scoring.score_features`), item by item."""

import json
from pathlib import Path

import pytest

from hellora.config import EvalConfig
from hellora.eval.run import EvalOutput, evaluate_tasks, resolve_protocol
from hellora.eval.tasks.skill import score_skill
from hellora.utils.errors import HelloraError


@pytest.fixture(scope="module")
def max_model():
    """A 2-layer skill MoE trained briefly on `max`: some test answers right, most wrong (a few seconds)."""
    from accelerate import Accelerator

    from hellora.data import build_tiny_tokenizer
    from hellora.study.pretrain_finetune import SkillMoESpec, mixture_features, pretrain_skill_moe

    tokenizer = build_tiny_tokenizer()
    spec = SkillMoESpec(hidden_size=64, layers=2, experts=4, top_k=2, pretrain_steps=120, pretrain_lr=5e-3,
                        pretrain_batch=32)
    data = mixture_features(tokenizer, [("max", 400)], seed=0)
    model, _ = pretrain_skill_moe(spec, len(tokenizer), data, Accelerator(cpu=True), init_seed=0, train_seed=0,
                                  progress=False)
    return model, tokenizer


@pytest.mark.slow
def test_generation_exact_match_is_the_teacher_forced_one_item_by_item(max_model, tmp_path):
    from hellora.data.skills import generate_skill_examples
    from hellora.study.scoring import score_features
    from hellora.study.skill_moe import skill_features

    model, tokenizer = max_model
    examples = generate_skill_examples("max", 32, seed=1, split="test")
    data = tmp_path / "max-test.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in examples))
    eval_config = EvalConfig(tasks=["skill"], data={"skill": str(data)})
    report, = evaluate_tasks(model, tokenizer, eval_config, EvalOutput(tmp_path / "eval"), progress=False)
    rows = [json.loads(line) for line in Path(report["scores"]["results_path"]).read_text().splitlines()]
    teacher = [score_features(model, skill_features(tokenizer, [e]))["exact_match"] == 1.0 for e in examples]
    assert [r["exact"] for r in rows] == teacher
    assert 0 < sum(teacher) < len(teacher)  # some right, some wrong: the comparison can tell them apart
    assert report["headline"]["accuracy"] == sum(teacher) / len(teacher)
    assert report["protocol"]["name"] == "exact" and report["examples"] == 32
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())


def test_columns_on_hand_made_rows():
    rows = [{"completion": "83", "answer": "83"}, {"completion": " 83 ", "answer": "83"},
            {"completion": "8", "answer": "83"}, {"completion": "830", "answer": "83"}]
    scores = score_skill(rows)
    assert scores["accuracy"] == {"exact": 0.25, "stripped": 0.5} and scores["n"] == 4


def test_the_headline_protocol_name_means_the_tasks_own():
    assert resolve_protocol("skill").name == "exact"
    assert resolve_protocol("skill", "lori").name == "exact"  # recipes say eval.protocol: lori for every task
    assert resolve_protocol("gsm8k", "lori").name == "lori"
    with pytest.raises(HelloraError, match="skill has no protocol 'robust'"):
        resolve_protocol("skill", "robust")


def test_missing_data_names_the_flag():
    from hellora.eval.tasks import get_eval_task

    with pytest.raises(HelloraError, match="--data: skill needs a JSONL"):
        get_eval_task("skill").load(None, None)


def test_special_tokens_before_eos_stay_in_the_completion():
    """An answer with a stray special token inside must not pass as exact: the skill protocol keeps them."""
    import torch

    from hellora.data import build_tiny_tokenizer
    from hellora.eval.generation import _decode

    tok = build_tiny_tokenizer()
    ids = tok("83", add_special_tokens=False)["input_ids"]
    stray = [ids[0], tok.bos_token_id, ids[1], tok.eos_token_id, tok.pad_token_id]
    clean = [*ids, tok.eos_token_id, tok.pad_token_id, tok.pad_token_id]
    rows = torch.tensor([stray, clean])
    kept = _decode(tok, rows, skip_special_tokens=False)
    assert kept[1] == "83" and kept[0] != "83" and tok.bos_token in kept[0]
    assert _decode(tok, rows, skip_special_tokens=True) == ["83", "83"]  # the usual decoding hides the stray token


def test_sampling_more_than_once_is_refused_before_work():
    with pytest.raises(HelloraError, match="num_samples: skill scores one greedy answer"):
        resolve_protocol("skill", num_samples=2)
