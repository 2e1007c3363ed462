"""No model code runs unless the user passes --trust-remote-code (issue 22.1).

Two model folders ship code that writes a canary file when imported (an `auto_map` in config.json):
- `known`: a real tiny OLMoE (a model type transformers knows) with an auto_map beside it, so every command works
  without the code, and would run it only if hellora switched trust on by itself (export's old
  `model_from_config(..., trust_remote_code=True)` did);
- `custom`: a model type only its own code defines, which every command must refuse with one line naming the flag.
Each command is run through both routes: `--model DIR` and an adapter whose record says `trust_remote_code: true`.
The canary is never written without the flag, and is written with it (the flag works).
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hellora.cli import main
from hellora.models.trust import check_recorded_trust, user_trust
from hellora.utils.errors import HelloraError
from tests.conftest import GSM8K

SRC = Path(__file__).resolve().parents[2] / "src" / "hellora"
LOADER = SRC / "models" / "loading.py"
CANARY_CODE = ("import os, pathlib\n"
               "pathlib.Path(os.environ['HELLORA_TEST_CANARY']).write_text('model code ran')\n")
CONFIG_CODE = CANARY_CODE + ("from transformers import PretrainedConfig\n\n\n"
                             "class CanaryConfig(PretrainedConfig):\n    model_type = 'canary_moe'\n")
MODEL_CODE = CANARY_CODE + ("from transformers import PreTrainedModel\n\n\n"
                            "class CanaryForCausalLM(PreTrainedModel):\n    pass\n")
AUTO_MAP = {"AutoConfig": "configuration_canary.CanaryConfig",
            "AutoModelForCausalLM": "modeling_canary.CanaryForCausalLM"}


def _write_code(folder: Path) -> None:
    (folder / "configuration_canary.py").write_text(CONFIG_CODE)
    (folder / "modeling_canary.py").write_text(MODEL_CODE)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{"known": tiny OLMoE + auto_map, "custom": a type only its code defines, "adapter": an adapter of known}."""
    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.adapters.io import save_adapter
    from hellora.data import build_tiny_tokenizer
    from hellora.models.tiny import tiny_model
    from tests.helpers import first_k_placement

    root = tmp_path_factory.mktemp("trust")
    known = root / "known"
    model = tiny_model("olmoe", vocab_size=104)
    model.save_pretrained(known)
    build_tiny_tokenizer().save_pretrained(known)
    config = json.loads((known / "config.json").read_text())
    (known / "config.json").write_text(json.dumps({**config, "auto_map": AUTO_MAP}))
    _write_code(known)

    custom = root / "custom"
    build_tiny_tokenizer().save_pretrained(custom)  # a tokenizer that loads, so the model's own code is what's refused
    (custom / "config.json").write_text(json.dumps({"model_type": "canary_moe", "auto_map": AUTO_MAP,
                                                    "architectures": ["CanaryForCausalLM"]}))
    _write_code(custom)

    attach_adapters(model, AdapterConfig(init="random", r=4, alpha=8), first_k_placement(model, (1, 5)))
    honest = save_adapter(model, root / "adapter", base_model=str(known),
                          extra={"model": {"name": str(known), "tokenizer": str(known)}})
    forged = save_adapter(model, root / "forged", base_model=str(known),
                          extra={"model": {"name": str(known), "tokenizer": str(known), "trust_remote_code": True}})
    data = root / "skill.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"sort {i} 1", "answer": f"1 {i}", "skill": "sort"}) + "\n"
                            for i in range(2, 5)))
    return {"known": known, "custom": custom, "adapter": honest, "forged": forged, "data": data, "root": root}


@pytest.fixture
def canary(tmp_path, monkeypatch):
    path = tmp_path / "canary"
    monkeypatch.setenv("HELLORA_TEST_CANARY", str(path))
    return path


def _recipe(tmp_path, model: Path, **extra) -> Path:
    values = {"model": {"name": str(model), "dtype": "float32"},
              "data": {"task": "gsm8k", "train": GSM8K, "limit": 16, "max_length": 64, "max_prompt_length": 48},
              "profile": {"mode": "forward", "fraction": 0.5}, "adapter": {"method": "hellora", "r": 2, "alpha": 4},
              "train": {"batch_size": 4, "micro_batch_size": 4, "max_steps": 1, "save_steps": 1},
              "output_dir": str(tmp_path / "run"), **extra}
    path = tmp_path / "recipe.yaml"
    path.write_text(json.dumps(values))  # JSON is YAML
    return path


def _commands(models, tmp_path, which: str) -> dict[str, list[str]]:
    model = str(models[which])
    return {
        "params": ["params", "--model", model],
        "flops": ["flops", "--model", model],
        "bench": ["bench", "--model", model, "--steps", "1", "--warmup", "0", "--layers", "1", "--seq", "8"],
        "profile": ["profile", str(_recipe(tmp_path, models[which])), "--out", str(tmp_path / "profile.json"),
                    "--no-progress"],
        "train": ["train", str(_recipe(tmp_path, models[which])), "--no-progress"],
        "eval": ["eval", "--model", model, "--tokenizer", "tiny", "--task", "skill", "--data", str(models["data"]),
                 "--out", str(tmp_path / "eval"), "--limit", "2", "--max-new-tokens", "2", "--no-progress"],
        "export-peft": ["export", "--adapter", str(models["adapter"]), "--model", model, "--format", "peft",
                        "--out", str(tmp_path / "peft")],
        "export-merged": ["export", "--adapter", str(models["adapter"]), "--model", model, "--format", "merged",
                          "--out", str(tmp_path / "merged")],
    }


COMMANDS = ["params", "flops", "bench", "profile", "train", "eval", "export-peft", "export-merged"]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_model_that_ships_its_own_type_is_refused_without_the_flag(models, tmp_path, canary, capsys, command):
    argv = _commands(models, tmp_path, "custom")[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--trust-remote-code" in err and len(err.splitlines()) == 1, err
    assert not canary.exists()
    assert not (tmp_path / "run").exists() and not (tmp_path / "peft").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["params", "flops", "profile", "train", "eval", "export-peft", "export-merged"])
def test_commands_work_on_a_known_type_without_running_its_code(models, tmp_path, canary, capsys, command):
    """A folder of a type transformers knows loads with transformers' own code; its auto_map is never imported."""
    argv = _commands(models, tmp_path, "known")[command]
    status = main(argv)
    assert status == 0, capsys.readouterr().err
    assert not canary.exists()


@pytest.mark.parametrize("argv", [
    ["export", "--format", "peft"], ["export", "--format", "merged"],
    ["eval", "--task", "skill", "--limit", "1", "--no-progress"],
])
def test_an_adapter_record_never_turns_trust_on(models, tmp_path, canary, capsys, argv):
    """The record says the base needs its code: refused with one line asking for the flag; nothing is loaded."""
    argv = [*argv, "--adapter", str(models["forged"]), "--out", str(tmp_path / "out")]
    if argv[0] == "eval":
        argv += ["--data", str(models["data"])]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "add --trust-remote-code" in err and "records a base model" in err and len(err.splitlines()) == 1, err
    assert not canary.exists()
    assert not (tmp_path / "out").exists()


def test_the_flag_lets_the_code_run(models, tmp_path):
    """The one positive check: with --trust-remote-code the user asked for the code, and it runs."""
    canary = tmp_path / "canary"
    env = {**os.environ, "HELLORA_TEST_CANARY": str(canary), "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "PYTHONPATH": os.pathsep.join([str(SRC.parent), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-m", "hellora.cli", "params", "--model", str(models["custom"]),
                    "--trust-remote-code"], env=env, capture_output=True, text=True, timeout=300)
    assert canary.read_text() == "model code ran"


def test_user_trust_takes_only_a_real_bool():
    assert user_trust(True) is True and user_trust(False) is False
    for value in ("false", "true", 1, 0, None, [True]):
        with pytest.raises(TypeError):
            user_trust(value)


@pytest.mark.parametrize("recorded", [False, None, "true", 1, {"x": 1}])
def test_only_a_json_true_in_a_record_asks_for_the_flag(recorded):
    check_recorded_trust(recorded, False, "adapter a")  # nothing to refuse: the flag stays off either way
    with pytest.raises(HelloraError, match="add --trust-remote-code"):
        check_recorded_trust(True, False, "adapter a")
    check_recorded_trust(True, True, "adapter a")  # the user asked


# --- one loader: no other call of transformers' loaders exists in src/ ---

LOADER_CALLS = {"from_pretrained", "from_config", "for_model"}
AUTO_NAMES = {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoTokenizer", "AutoModelForSeq2SeqLM",
              "AutoProcessor", "AutoModelForSequenceClassification", "PeftModel", "PeftConfig"}


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in LOADER_CALLS:
            found.append(f"{path.name}:{node.lineno} calls .{node.func.attr}")
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in AUTO_NAMES:
                found.append(f"{path.name}:{node.lineno} uses {name}")
        if isinstance(node, ast.ImportFrom):
            found += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names if a.name in AUTO_NAMES]
        if isinstance(node, ast.keyword) and node.arg == "trust_remote_code" and isinstance(node.value, ast.Constant) \
                and node.value.value is True:
            found.append(f"{path.name}:{node.lineno} passes trust_remote_code=True")
    return found


def test_only_the_loader_module_calls_transformers_loaders():
    violations = [v for path in sorted(SRC.rglob("*.py")) if path != LOADER for v in _violations(path)]
    assert violations == []


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The scan above can fail: each forbidden form is caught in a sample file."""
    sample = tmp_path / "sample.py"
    sample.write_text("from transformers import AutoConfig\nimport transformers\n"
                      "m = transformers.AutoModelForCausalLM.from_pretrained('x', trust_remote_code=True)\n"
                      "c = cfg.from_config(x)\n")
    found = " ".join(_violations(sample))
    for what in ("imports AutoConfig", "uses AutoModelForCausalLM", "calls .from_pretrained",
                 "passes trust_remote_code=True", "calls .from_config"):
        assert what in found
    loader = " ".join(_violations(LOADER))
    assert "calls .from_pretrained" in loader and "trust_remote_code=True" not in loader
