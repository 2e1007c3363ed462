"""Warnings silenced at their cause: a preset with a smaller vocabulary drops the special token ids it no longer
holds (doctor's "eos_token_id must be None or within the vocabulary"), and PEFT's read of a deprecated transformers
attribute gives no FutureWarning on export."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

from hellora.models.loading import load_config

REPO = Path(__file__).resolve().parents[1]


def test_a_smaller_vocab_override_drops_special_ids_outside_it():
    config = load_config("olmoe-1b-7b", overrides={"vocab_size": 1024})
    assert config.eos_token_id is None and config.pad_token_id == 1  # 50279 is gone, 1 still fits
    assert load_config("olmoe-1b-7b").eos_token_id == 50279
    assert load_config("olmoe-1b-7b", overrides={"vocab_size": 1024, "eos_token_id": 7}).eos_token_id == 7


def test_building_the_doctors_small_model_prints_no_token_warning(tmp_path):
    code = ("from hellora.models.loading import load_model\n"
            "load_model('olmoe-1b-7b', dtype='float32', overrides={'hidden_size': 64, 'intermediate_size': 32, "
            "'num_experts': 4, 'num_experts_per_tok': 2, 'vocab_size': 1024, 'num_attention_heads': 4, "
            "'num_key_value_heads': 4, 'num_hidden_layers': 1})\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src"), "TRANSFORMERS_VERBOSITY": "warning"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "_token_id must be" not in done.stderr


def test_peft_wrapping_gives_no_future_warning():
    from peft import LoraConfig

    from hellora.adapters.export import quiet_get_peft_model
    from hellora.models.tiny import tiny_model

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_get_peft_model(tiny_model("olmoe", vocab_size=104), LoraConfig(r=2, target_modules=["q_proj"]))
    assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]


def test_torchaos_import_chatter_is_silenced_where_hellora_sets_up_logging():
    """PEFT imports torchao (when installed) on every LoRA attach; its CPU-build "Failed to load" lines and
    torch's enum-registration warnings are not about the user's run. Control first: without the setting they
    print (else this torchao build has nothing to silence)."""
    import pytest

    pytest.importorskip("torchao")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    def stderr(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stderr

    chatter = ("Failed to load", "_pytree")
    if not any(c in stderr("import torchao") for c in chatter):
        pytest.skip("this torchao build prints nothing at import")
    quiet = stderr("from hellora.cli.support import setup_logging\nsetup_logging(False)\nimport torchao")
    assert not any(c in quiet for c in chatter), quiet[-2000:]
