"""Bring your own trainer: a hellora-attached model trains inside `transformers.Trainer`, and `save_adapter`
afterwards writes the same adapter format the pipeline writes (loadable with `load_adapter`, same logits)."""

import json

import pytest
import torch

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.io import load_adapter, read_adapter_record, save_adapter
from hellora.data import PadCollator, build_tiny_tokenizer, encode_pairs
from hellora.data.skills import generate_skill_examples
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.placement import HotExpertPlacement

pytestmark = pytest.mark.slow


def _hellora_model():
    model = tiny_model("olmoe", vocab_size=104)
    spec = describe_moe_model(model)
    placement = HotExpertPlacement({layer: [0, 1] for layer in spec.moe_layer_indices}, spec.num_experts, "layer", k=2)
    return attach_adapters(model, AdapterConfig(method="hellora", r=4, alpha=8), placement)


def test_transformers_trainer_trains_a_hellora_model_and_save_adapter_gives_the_usual_format(tmp_path):
    from transformers import Trainer, TrainingArguments

    tokenizer = build_tiny_tokenizer()
    examples = generate_skill_examples("sort", 16, seed=0)
    features = encode_pairs(tokenizer, [(e["prompt"], e["answer"]) for e in examples], 64, 48)
    model = _hellora_model()
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=3, per_device_train_batch_size=4,
                             learning_rate=1e-2, use_cpu=True, report_to=[], save_strategy="no", logging_steps=1,
                             remove_unused_columns=False, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=features, data_collator=PadCollator(tokenizer.pad_token_id))
    trainer.train()

    trained = dict(model.named_parameters())
    assert all(torch.equal(trained[n], p) for n, p in frozen.items())  # the base stays frozen
    assert any(not torch.equal(trained[n], p) for n, p in before.items())  # the adapters learned
    save_adapter(model, tmp_path / "adapter", base_model="tiny-olmoe")
    record = read_adapter_record(tmp_path / "adapter")
    assert record["adapter"]["method"] == "hellora" and record["experts"]
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["hellora_adapter.json",
                                                                        "hellora_adapter.safetensors"]

    fresh = load_adapter(tiny_model("olmoe", vocab_size=104), tmp_path / "adapter")
    ids = torch.tensor([features[0]["input_ids"]])
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, fresh(ids).logits, atol=1e-6)
    assert json.loads((tmp_path / "adapter" / "hellora_adapter.json").read_text())["format"] == record["format"]


def test_trl_sft_trainer_if_installed(tmp_path):
    trl = pytest.importorskip("trl", reason="TRL is not installed (optional: pip install trl)")
    from datasets import Dataset

    model = _hellora_model()
    tokenizer = build_tiny_tokenizer()
    rows = [{"prompt": e["prompt"], "completion": e["answer"]} for e in generate_skill_examples("sort", 16, seed=0)]
    config = trl.SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=2, per_device_train_batch_size=4,
                           use_cpu=True, report_to=[], save_strategy="no")
    trl.SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer).train()
    save_adapter(model, tmp_path / "adapter", base_model="tiny-olmoe")
    assert read_adapter_record(tmp_path / "adapter")["adapter"]["method"] == "hellora"
