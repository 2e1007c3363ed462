"""`hellora train RECIPE model.cold_experts=int8` end to end on the tiny OLMoE: trains, records the setting, resumes
bitwise, exports PEFT (the record says the base was quantized), a merged export dequantizes, eval --adapter loads
the experts as trained; refusals come before any folder is made."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file

from hellora.adapters.io import load_adapter, read_adapter_record
from hellora.cli import main
from hellora.models.tiny import tiny_model
from hellora.quant import QuantizedExpertWeight, is_quantized
from hellora.loop import training as loop

TRAIN = "{batch_size: 8, micro_batch_size: 4, max_steps: 6, save_steps: 2, logging_steps: 1, learning_rate: 0.002}"


def _adapter(run):
    return load_file(str(run / "adapter" / "hellora_adapter.safetensors"))


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, tiny_model_dir):
    from tests.conftest import recipe_text

    root = tmp_path_factory.mktemp("quant")
    recipe = root / "r.yaml"
    recipe.write_text(recipe_text(tiny_model_dir, root / "run", train=TRAIN))
    assert main(["train", str(recipe), "model.cold_experts=int8", "--no-progress"]) == 0
    return root / "run"


def test_train_records_the_setting_in_the_run_files(int8_run):
    config = yaml.safe_load((int8_run / "config.yaml").read_text())
    assert config["model"]["cold_experts"] == "int8" and config["model"]["hot_experts"] == "keep"
    record = read_adapter_record(int8_run / "adapter")
    assert record["model"]["cold_experts"] == "int8" and record["model"]["hot_experts"] == "keep"
    status = json.loads((int8_run / "run.json").read_text())
    assert status["status"] == "finished"
    losses = [json.loads(line)["loss"] for line in (int8_run / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses)))


def test_load_adapter_stores_the_experts_as_trained(int8_run):
    model = load_adapter(tiny_model("olmoe", vocab_size=104), int8_run / "adapter")
    stores = [m for m in model.modules() if isinstance(m, QuantizedExpertWeight)]
    hot = model.hellora_adapter.experts
    assert stores and all(len(s.experts_of("int8")) == s.shape[0] - len(hot[0]) for s in stores)


def test_resume_with_quantized_cold_experts_is_bitwise(int8_run, write_recipe, tmp_path, monkeypatch):
    recipe = write_recipe("b.yaml", out="broken", train=TRAIN)
    real = loop.save_checkpoint

    def save(folder, step, *args, **kw):
        path = real(folder, step, *args, **kw)
        if step == 4:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(loop, "save_checkpoint", save)
    assert main(["train", str(recipe), "model.cold_experts=int8", "--no-progress"]) == 130
    monkeypatch.undo()
    assert main(["train", str(recipe), "model.cold_experts=int8", "--no-progress"]) == 0
    status = json.loads((tmp_path / "broken" / "run.json").read_text())
    assert status["steps"]["train"]["resumed_from"] == 4
    a, b = _adapter(int8_run), _adapter(tmp_path / "broken")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_peft_export_records_the_quantized_base(int8_run, tmp_path):
    out = tmp_path / "peft"
    assert main(["export", "--adapter", str(int8_run / "adapter"), "--format", "peft", "--out", str(out)]) == 0
    sidecar = json.loads((out / "hellora_placement.json").read_text())
    assert sidecar["base_experts"] == {"cold_experts": "int8", "hot_experts": "keep"}
    assert (out / "adapter_model.safetensors").is_file()


def test_merged_export_dequantizes_to_what_training_saw(int8_run, tmp_path):
    from hellora.adapters.export import export_merged

    model = load_adapter(tiny_model("olmoe", vocab_size=104), int8_run / "adapter")
    ids = torch.randint(0, 104, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
    export_merged(model, tmp_path / "merged")
    assert not is_quantized(model)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("override, message", [
    ("adapter.method=fft", "model.cold_experts: full fine-tuning trains every expert, so none can stay quantized"),
    ("adapter.variant=dora", "model.cold_experts: DoRA is not run over quantized experts"),
])
def test_refusals_name_the_field_before_any_folder(write_recipe, tmp_path, capsys, override, message):
    assert main(["train", str(write_recipe(out="refused")), "model.cold_experts=nf4", override, "--no-progress"]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_unknown_storage_names_the_field(write_recipe, capsys):
    assert main(["train", str(write_recipe()), "model.cold_experts=fp4", "--no-progress"]) != 0
    assert "model.cold_experts: unknown value 'fp4'; choose one of keep, int8, nf4" in capsys.readouterr().err


def test_report_label_shows_the_quantization(int8_run):
    from hellora.report.runs import load_run

    assert load_run(int8_run).label.endswith(" cold=int8")
