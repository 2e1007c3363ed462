"""A hub id that is not cached, with the hub unreachable, stops at once with one line (transformers would retry for
about 50 s); an adapter saved with `base_model=` names that model to `export` and `eval --adapter`."""

import time

import pytest

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.io import read_adapter_record, save_adapter
from hellora.cli import main
from hellora.models import loading
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.placement import HotExpertPlacement
from hellora.utils.errors import HelloraError

HUB_ID = "allenai/OLMoE-1B-7B-0924"


@pytest.fixture
def no_hub(monkeypatch, tmp_path):
    """Online mode, an empty hub cache, and an endpoint nothing listens on (the connection is refused at once)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-home" / "hub"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(loading, "_REACHABLE", {})


def test_an_unreachable_hub_fails_fast_with_one_line(no_hub):
    start = time.perf_counter()
    with pytest.raises(HelloraError, match="hub \\(127.0.0.1\\) cannot be reached"):
        loading.load_config(HUB_ID)
    assert time.perf_counter() - start < loading.HUB_PROBE_TIMEOUT_S + 2


def test_save_adapter_records_its_base_model_and_export_fails_fast_offline(no_hub, tmp_path, capsys, monkeypatch):
    model = tiny_model("olmoe", vocab_size=104)
    spec = describe_moe_model(model)
    placement = HotExpertPlacement({layer: [0] for layer in spec.moe_layer_indices}, spec.num_experts, "layer", k=1)
    attach_adapters(model, AdapterConfig(method="hellora", r=2, alpha=4), placement)
    save_adapter(model, tmp_path / "adapter", base_model=HUB_ID)
    assert read_adapter_record(tmp_path / "adapter")["model"] == {"name": HUB_ID}
    start = time.perf_counter()
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft", "--out",
                 str(tmp_path / "peft")]) == 2
    err = capsys.readouterr().err
    assert time.perf_counter() - start < loading.HUB_PROBE_TIMEOUT_S + 5
    assert len(err.strip().splitlines()) == 1 and HUB_ID in err and "cannot be reached" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: the same one line, asking for a local folder
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft", "--out",
                 str(tmp_path / "peft")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "offline" in err
    # eval --adapter finds the model the same way (no "give --task and --model")
    assert main(["eval", "--task", "skill", "--adapter", str(tmp_path / "adapter"), "--data", str(tmp_path / "x"),
                 "--out", str(tmp_path / "ev")]) == 2
    assert "give --task and --model" not in capsys.readouterr().err
