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
