"""`hellora demo` machinery at a smaller size: deterministic for a seed, writes its report and heatmap."""

import json

from hellora.demo.run import DemoConfig, format_demo_report, run_demo

SMALL = dict(skills=("copy", "upper"), target="upper", pretrain_per_skill=64, target_pretrain=16,
             finetune_examples=64, eval_examples=8, hidden_size=32, layers=2, experts=4, pretrain_steps=6,
             finetune_steps=4, batch_size=16, rank=4)


def test_demo_small_is_deterministic_and_writes_its_files(tmp_path):
    a = run_demo(tmp_path / "a", DemoConfig(**SMALL), progress=False)
    b = run_demo(tmp_path / "b", DemoConfig(**SMALL), progress=False)
    for key in ("before", "hot_experts", "target_top_k_share", "pretrain_final_loss"):
        assert a[key] == b[key]
    assert a["results"]["hellora"]["accuracy"] == b["results"]["hellora"]["accuracy"]
    assert a["results"]["hellora"]["trainable"] < a["results"]["lora"]["trainable"]
    png = (tmp_path / "a" / "expert_heatmap.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "a" / "demo.json").read_text())
    assert saved["target"] == "upper" and len(saved["hot_experts"]) == 2
    assert "HELLoRA" in format_demo_report(saved)


def test_demo_saves_its_model_tokenizer_and_data_for_the_other_commands(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from hellora.data.tasks import get_task

    report = run_demo(tmp_path / "d", DemoConfig(**SMALL), progress=False)
    folder = tmp_path / "d" / "base-model"
    assert report["base_model"] == str(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "olmoe" and len(tokenizer) == model.config.vocab_size
    ids = torch.tensor([tokenizer("ab")["input_ids"]])
    assert model(ids).logits.shape == (1, 2, model.config.vocab_size)
    assert set(report["data"]) == {"upper-train", "copy-test", "upper-test"}
    train = get_task("skill").load(report["data"]["upper-train"])
    assert len(train) == SMALL["finetune_examples"] and {"prompt", "answer"} <= set(train[0])
    prompt, target = get_task("skill").format(train[0])
    assert (prompt, target) == (train[0]["prompt"], train[0]["answer"])
