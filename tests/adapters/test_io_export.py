"""Save/load round trips, stock-PEFT loading of exports, merged checkpoints, refusals."""

import json
import subprocess
import sys

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.export import export_merged, export_peft
from hellora.adapters.io import load_adapter, save_adapter
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from tests.conftest import FUSED_FAMILIES
from tests.helpers import first_k_placement, tiny_deepseek_layout

IDS = torch.randint(3, 128, (2, 10), generator=torch.Generator().manual_seed(1))


def _adapted(family, method="hellora", targets="all"):
    model = tiny_model(family)
    attach_adapters(model, AdapterConfig(method=method, init="random", r=4, alpha=8, targets=targets),
                    first_k_placement(model, (1, 5)))
    return model


@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_stock_peft_loads_the_export_and_gives_the_same_logits(family, tmp_path):
    model = _adapted(family)
    with torch.no_grad():
        ours = model(IDS).logits
    export_peft(model, tmp_path / "peft", base_model="tiny")
    peft_model = PeftModel.from_pretrained(tiny_model(family), tmp_path / "peft")
    with torch.no_grad():
        theirs = peft_model(IDS).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)
    sidecar = json.loads((tmp_path / "peft" / "hellora_placement.json").read_text())
    assert set(map(tuple, sidecar["experts"].values())) == {(1, 5)}


@pytest.mark.slow
def test_peft_export_of_remote_layout_and_lora_method(tmp_path):
    model = tiny_deepseek_layout()
    attach_adapters(model, AdapterConfig(init="random", r=4, alpha=8), first_k_placement(model, (2, 6)))
    with torch.no_grad():
        ours = model(IDS).logits
    export_peft(model, tmp_path / "a")
    theirs = PeftModel.from_pretrained(tiny_deepseek_layout(), tmp_path / "a")(IDS).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)
    lora = _adapted("qwen3_moe", method="lora")
    export_peft(lora, tmp_path / "b")
    torch.testing.assert_close(PeftModel.from_pretrained(tiny_model("qwen3_moe"), tmp_path / "b")(IDS).logits,
                               lora(IDS).logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["olmoe", "gpt_oss", "deepseek_v2"])
def test_save_load_and_merged_export(family, tmp_path):
    model = _adapted(family)
    with torch.no_grad():
        ours = model(IDS).logits
    save_adapter(model, tmp_path / "adapter", base_model="tiny")
    loaded = load_adapter(tiny_model(family), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, ours)
    export_merged(loaded, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    with torch.no_grad():
        torch.testing.assert_close(merged(IDS).logits, ours, rtol=1e-4, atol=1e-5)


def test_adapter_for_another_model_is_refused(tmp_path):
    save_adapter(_adapted("olmoe"), tmp_path / "adapter")
    with pytest.raises(HelloraError, match="another model"):
        load_adapter(tiny_model("olmoe", hidden_size=48), tmp_path / "adapter")


def test_existing_outputs_are_not_overwritten(tmp_path):
    model = _adapted("olmoe")
    save_adapter(model, tmp_path / "adapter")
    before = (tmp_path / "adapter" / "hellora_adapter.safetensors").read_bytes()
    with pytest.raises(HelloraError, match="already holds an adapter"):
        save_adapter(_adapted("mixtral"), tmp_path / "adapter")
    assert (tmp_path / "adapter" / "hellora_adapter.safetensors").read_bytes() == before
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(HelloraError, match="already exists"):
        export_peft(model, tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


@pytest.mark.slow
def test_cli_export_from_saved_adapter(tmp_path):
    base = tiny_model("olmoe")
    base.save_pretrained(tmp_path / "base")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    attach_adapters(model, AdapterConfig(init="random", r=4, alpha=8), first_k_placement(model, (1, 5)))
    with torch.no_grad():
        ours = model(IDS).logits
    save_adapter(model, tmp_path / "adapter", base_model=str(tmp_path / "base"))
    for fmt in ("peft", "merged"):
        done = subprocess.run([sys.executable, "-m", "hellora.cli", "export", "--adapter", str(tmp_path / "adapter"),
                               "--format", fmt, "--out", str(tmp_path / fmt)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    peft_logits = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "base"),
                                            tmp_path / "peft")(IDS).logits
    merged_logits = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(IDS).logits
    torch.testing.assert_close(peft_logits, ours, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(merged_logits, ours, rtol=1e-4, atol=1e-5)
    again = subprocess.run([sys.executable, "-m", "hellora.cli", "export", "--adapter", str(tmp_path / "adapter"),
                            "--format", "peft", "--out", str(tmp_path / "peft")], capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr and "Traceback" not in again.stderr


def test_adapter_saved_before_the_variant_fields_still_loads(tmp_path):
    model = _adapted("olmoe")
    with torch.no_grad():
        ours = model(IDS).logits
    save_adapter(model, tmp_path / "adapter")
    path = tmp_path / "adapter" / "hellora_adapter.json"
    record = json.loads(path.read_text())
    new_fields = ("variant", "lori_from", "lori_density", "loramoe_experts", "loramoe_balance", "loramoe_delta")
    record["adapter"] = {k: v for k, v in record["adapter"].items() if k not in new_fields}
    record["adapter"]["placement"] = record["adapter"].pop("targets")  # the older key names, and a dead field
    record["adapter"]["extra"] = {}
    path.write_text(json.dumps(record))
    with pytest.warns(FutureWarning, match="key 'placement' is deprecated"):
        loaded = load_adapter(tiny_model("olmoe"), tmp_path / "adapter")
    assert loaded.hellora_adapter.config.variant == "none"
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, ours)


def _folder_bytes(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("failing", ["save_file", "atomic_write_json"])
def test_failed_overwrite_keeps_the_old_adapter_whole(tmp_path, monkeypatch, failing):
    import hellora.adapters.io as adapter_io

    save_adapter(_adapted("olmoe"), tmp_path / "adapter")
    before = _folder_bytes(tmp_path / "adapter")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(adapter_io, failing, crash)  # the weights write, or the record write after it
    new = _adapted("olmoe", targets="pure")
    with pytest.raises(OSError, match="disk full"):
        save_adapter(new, tmp_path / "adapter", overwrite=True)
    assert _folder_bytes(tmp_path / "adapter") == before
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]  # no temporary folder or file left behind
    load_adapter(tiny_model("olmoe"), tmp_path / "adapter")


def test_overwrite_replaces_the_whole_folder(tmp_path):
    save_adapter(_adapted("olmoe"), tmp_path / "adapter")
    (tmp_path / "adapter" / ".hellora_adapter.safetensors.x.tmp").write_text("left by a kill")
    model = _adapted("olmoe", targets="pure")
    with torch.no_grad():
        ours = model(IDS).logits
    save_adapter(model, tmp_path / "adapter", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["hellora_adapter.json",
                                                                        "hellora_adapter.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["adapter"]
    with torch.no_grad():
        assert torch.equal(load_adapter(tiny_model("olmoe"), tmp_path / "adapter")(IDS).logits, ours)
