"""Mistakes a new user makes, run against the real CLI entry point (`hellora.cli.main`).

Each one must: exit non-zero; print exactly one line to stderr, naming the field, file or flag at fault and what
to do; show no traceback; and leave every file that existed before exactly as it was (the whole folder is hashed
before and after). A rejected config also creates no run folder. Keep this list: add a case for every new way a
user finds to get it wrong.

`{home}` is a folder like `hellora demo`'s output (tests/cli/conftest.py), `{tmp}` the case's own folder holding
`recipe.yaml` (a valid CPU recipe), `bad.yaml` (invalid YAML), a finished run `done/`, a profile, a
placement, a report folder, a demo folder, an adapter export and a plain non-run folder.
"""

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from hellora.cli import main

RECIPE = """model: {{name: {home}/hellora-demo/base-model, dtype: float32}}
data: {{task: skill, train: {home}/hellora-demo/data/sort-train.jsonl, max_length: 64, max_prompt_length: 48}}
profile: {{mode: warmup, fraction: 0.25}}
selection: {{k: 2}}
adapter: {{method: hellora, r: 4, alpha: 8}}
train: {{learning_rate: 3e-3, batch_size: 8, micro_batch_size: 8, max_steps: 2, save_steps: 1}}
output_dir: {tmp}/run
"""

T = "train {tmp}/recipe.yaml"
# (command line, words the one error line must contain)
MISTAKES = [
    # the issue's own cases
    (f"{T} train.learning_rate=-0.0001", ["override train.learning_rate=-0.0001", "train.learning_rate"]),
    (f"{T} train.learning_rate=-1e-4", ["train.learning_rate", "(0, inf)", "got -0.0001"]),
    ("select --profile {tmp}/profile.json --out {tmp}/placement.json", ["--out", "exists", "--overwrite"]),
    ("report {tmp}/done --out {tmp}/report", ["--out", "exists", "--overwrite"]),
    ("demo --out {tmp}/demo", ["--out", "exists", "--overwrite"]),
    ("export --adapter {tmp}/preset-adapter --format merged --out {tmp}/m", ["random", "--format peft"]),
    ("params --model ./no/such/model", ["no such local folder", "./no/such/model"]),
    ("eval --task gsm8k --model {tmp}/no-model --data x.jsonl --out {tmp}/e", ["no such local folder"]),
    ("flops --model olmoe-1b-7b --profile {tmp}/profile.json", ["profile", "model"]),
    (f"{T} train.max_step=3", ["unknown key train.max_step", "max_steps"]),
    # recipes
    ("train {tmp}/missing.yaml", ["recipe not found", "missing.yaml"]),
    ("train {tmp}", ["is a folder", "YAML file"]),
    ("train {tmp}/bad.yaml", ["bad.yaml line", "invalid YAML"]),
    ("train {tmp}/recipe.yaml trian.epochs=1", ["unknown section 'trian'"]),
    ("train {tmp}/recipe.yaml epochs=1", ["override 'epochs=1'", "section.name"]),
    ("train {tmp}/recipe.yaml train.epochs", ["expected key=value"]),
    ("train {tmp}/recipe.yaml train.epochs=0", ["train.epochs", "override train.epochs=0"]),
    ("train {tmp}/recipe.yaml train.batch_size=-8", ["train.batch_size", "integer >= 1"]),
    ("train {tmp}/recipe.yaml train.micro_batch_size=0", ["train.micro_batch_size"]),
    ("train {tmp}/recipe.yaml train.max_steps=0", ["train.max_steps"]),
    ("train {tmp}/recipe.yaml train.warmup_ratio=1.5", ["train.warmup_ratio", "[0, 1)"]),
    ("train {tmp}/recipe.yaml train.lr_scheduler=cosin", ["train.lr_scheduler", "cosine"]),
    ("train {tmp}/recipe.yaml train.learning_rate=fast", ["train.learning_rate", "expected float"]),
    ("train {tmp}/recipe.yaml train.learning_rate=0", ["train.learning_rate", "override train.learning_rate=0"]),
    ("train {tmp}/recipe.yaml adapter.r=0", ["adapter.r"]),
    ("train {tmp}/recipe.yaml adapter.method=lorra", ["adapter.method", "lorra"]),
    ("train {tmp}/recipe.yaml adapter.dropout=1", ["adapter.dropout"]),
    ("train {tmp}/recipe.yaml selection.k=0", ["selection.k", "integer >= 1"]),
    ("train {tmp}/recipe.yaml selection.k=99", ["k", "[1, 4]"]),
    ("train {tmp}/recipe.yaml selection.strategy=hottest", ["selection.strategy", "layer"]),
    ("train {tmp}/recipe.yaml selection.p=0", ["selection.p"]),
    ("train {tmp}/recipe.yaml profile.fraction=0", ["profile.fraction", "(0, 1]"]),
    ("train {tmp}/recipe.yaml profile.fraction=1.5", ["profile.fraction"]),
    ("train {tmp}/recipe.yaml profile.mode=warm", ["profile.mode", "warmup"]),
    ("train {tmp}/recipe.yaml profile.mode=none", ["profile.mode", "needs a profile", "selection.path"]),
    ("train {tmp}/recipe.yaml profile.stable_window=0", ["profile.stable_window", "integer >= 1"]),
    ("train {tmp}/recipe.yaml profile.stable_jaccard=1.5", ["profile.stable_jaccard", "(0, 1]"]),
    ("train {tmp}/recipe.yaml data.task=gsm", ["data.task", "gsm8k"]),
    ("train {tmp}/recipe.yaml data.limit=0", ["data.limit"]),
    ("train {tmp}/recipe.yaml data.train={tmp}/nope.jsonl", ["nope.jsonl"]),
    ("train {tmp}/recipe.yaml model.dtype=float8", ["model.dtype", "float32"]),
    ("train {tmp}/recipe.yaml model.name={tmp}/no-model", ["no such local folder"]),
    ("train {tmp}/recipe.yaml eval.tasks=[gsm8k,mmlu]", ["eval.tasks", "mmlu"]),
    ("train {tmp}/recipe.yaml eval.enabled=true eval.tasks=[skill]", ["eval.data.skill", "needs"]),
    ("train {tmp}/recipe.yaml eval.enabled=true eval.tasks=[gsm8k] eval.protocol=keywords",
     ["eval.protocol", "keywords", "lori"]),
    ("train {tmp}/recipe.yaml selection.path={tmp}/nope.json", ["nope.json", "not found"]),
    ("train {tmp}/recipe.yaml output_dir={tmp}/done", ["finished run", "output_dir"]),
    ("train {tmp}/recipe.yaml output_dir={tmp}/plain", ["not empty", "output_dir"]),
    ("train {tmp}/recipe.yaml output_dir={tmp}/plain --overwrite", ["holds no hellora run"]),
    # other commands
    ("train", ["required", "recipe"]),
    ("trian {tmp}/recipe.yaml", ["invalid choice", "train"]),
    ("train {tmp}/recipe.yaml --epochs 1", ["unrecognized arguments", "--epochs"]),
    ("profile {tmp}/recipe.yaml --out {tmp}/profile.json", ["--out", "exists", "--overwrite"]),
    ("select --profile {tmp}/nope.json --out {tmp}/p2.json", ["--profile", "not found"]),
    ("select --profile {tmp}/recipe.yaml --out {tmp}/p2.json", ["recipe.yaml"]),
    ("select --profile {tmp}/profile.json --strategy hottest --out {tmp}/p2.json", ["--strategy", "hottest"]),
    ("select --profile {tmp}/profile.json --k 99 --out {tmp}/p2.json", ["k", "99"]),
    ("select --profile {tmp}/profile.json --k two --out {tmp}/p2.json", ["--k", "invalid int"]),
    ("select --profile {tmp}/profile.json --strategy retention --out {tmp}/p2.json", ["retention", "--reference PATH"]),
    ("select --profile {tmp}/profile.json --reference {tmp}/profile.json --out {tmp}/p2.json", ["--reference", "'layer'"]),
    ("train {tmp}/recipe.yaml selection.strategy=retention", ["selection.strategy", "selection.reference"]),
    ("train {tmp}/recipe.yaml selection.strategy=retention selection.reference={tmp}/nope.json", ["nope.json"]),
    ("compare {tmp}/profile.json {tmp}/nope.json", ["reference", "not found"]),
    ("export --adapter {tmp}/nope --format peft --out {tmp}/x", ["nope"]),
    ("export --adapter {tmp}/preset-adapter --format peft --out {tmp}/export", ["already exists", "--overwrite"]),
    ("export --adapter {tmp}/preset-adapter --format onnx --out {tmp}/x", ["--format", "onnx"]),
    ("report {tmp}/plain --out {tmp}/r2", ["not a hellora run folder"]),
    ("params --model olmoe-1b-7b --method hellora --k 0", ["k"]),
    ("eval --task skill --model {home}/hellora-demo/base-model --out {tmp}/e", ["--data", "skill needs"]),
    ("params --model mixtral-8x7b --k 9", ["k", "[1, 8]", "9"]),
    ("params --model mixtral-8x7b --gpus 0", ["--gpus", "at least 1"]),
]


PROGRESS = re.compile(r"\d+/\d+ \[[\d:<?]+")  # a progress bar line (tqdm), not a message


def _tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file (and a marker for every folder) under `folder`."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def prepared(demo_home, tmp_path_factory):
    """The files every case starts from, made once (then copied per case)."""
    base = tmp_path_factory.mktemp("mistakes")
    (base / "recipe.yaml").write_text(RECIPE.format(home=demo_home, tmp="TMP"))
    (base / "bad.yaml").write_text("model:\n  name: x\n  dtype: [float32\ndata: {}\n")
    (base / "done").mkdir()
    (base / "done" / "run.json").write_text(json.dumps({"status": "finished", "steps": {}}))
    (base / "done" / "config.yaml").write_text("output_dir: done\n")
    (base / "plain").mkdir()
    (base / "plain" / "notes.txt").write_text("not a run\n")
    for name in ("report", "demo", "export"):
        (base / name).mkdir()
        (base / name / "keep.txt").write_text(f"{name} from before\n")
    recipe = base / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("TMP", str(base)))
    assert main(["profile", str(recipe), "--out", str(base / "profile.json"), "--no-progress"]) == 0
    assert main(["select", "--profile", str(base / "profile.json"), "--out", str(base / "placement.json")]) == 0
    _preset_adapter(base / "preset-adapter")
    (base / "recipe.yaml").write_text(RECIPE.format(home=demo_home, tmp="TMP"))  # paths re-rooted per case
    return base


def _preset_adapter(folder: Path) -> None:
    """A hellora adapter saved on a preset (random weights) with config overrides, as a smoke run makes."""
    import torch

    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.adapters.io import save_adapter
    from hellora.models.loading import load_model

    overrides = {"num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 16, "num_experts": 4,
                 "num_experts_per_tok": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 104}
    model = load_model("olmoe-1b-7b", dtype="float32", overrides=overrides, seed=0)
    attach_adapters(model, AdapterConfig(method="lora", r=2, alpha=4, init="random"))
    save_adapter(model, folder, base_model="olmoe-1b-7b",
                 extra={"model": {"name": "olmoe-1b-7b", "overrides": overrides, "tokenizer": "tiny"}})
    del torch


@pytest.mark.slow
@pytest.mark.parametrize("line, words", MISTAKES, ids=[m[0].replace("{tmp}/", "")[:60] for m in MISTAKES])
def test_mistake_gives_one_clear_line_and_changes_nothing(line, words, prepared, demo_home, tmp_path, capsys):
    tmp = tmp_path / "case"
    shutil.copytree(prepared, tmp)
    recipe = tmp / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("TMP", str(tmp)))
    before = _tree(tmp)
    capsys.readouterr()
    code = main(line.format(tmp=tmp, home=demo_home).split())
    err = capsys.readouterr().err
    lines = [x for x in err.strip().splitlines() if x.strip() and not PROGRESS.search(x)]
    assert code != 0, f"accepted: {line}"
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], f"{word!r} not in: {lines[0]}"
    after = _tree(tmp)
    changed = [p for p, h in before.items() if after.get(p) != h]
    assert not changed, f"changed or removed: {changed}"
    assert not (tmp / "run").exists(), "a rejected config left a run folder"


def test_there_are_at_least_thirty_mistakes():
    assert len(MISTAKES) >= 30


def test_numbers_typed_as_people_type_them_are_accepted(prepared, tmp_path):
    from hellora.config import load_run_config

    recipe = tmp_path / "r.yaml"
    recipe.write_text("train: {learning_rate: 2e-4, warmup_ratio: .5, weight_decay: 1E-3}\n")
    config = load_run_config(recipe, ["train.max_grad_norm=1e0", "selection.p=.25"])
    assert (config.train.learning_rate, config.train.warmup_ratio, config.train.weight_decay) == (2e-4, 0.5, 1e-3)
    assert (config.train.max_grad_norm, config.selection.p) == (1.0, 0.25)


def test_debug_shows_the_traceback(tmp_path, capsys):
    with pytest.raises(Exception):
        main(["train", str(tmp_path / "missing.yaml"), "--debug"])


def test_peft_export_of_a_preset_run_with_overrides_rebuilds_the_same_model(prepared, tmp_path):
    """The adapter records its model's overrides, so a PEFT export needs no --model and no weights."""
    assert main(["export", "--adapter", str(prepared / "preset-adapter"), "--format", "peft",
                 "--out", str(tmp_path / "peft")]) == 0
    config = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "olmoe-1b-7b"


def test_eval_loading_rebuilds_a_preset_run_with_its_overrides_and_tokenizer(prepared):
    from hellora.models.inference import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer("olmoe-1b-7b", adapter=str(prepared / "preset-adapter"),
                                                dtype="float32", device="cpu")
    assert model.config.num_hidden_layers == 1 and len(tokenizer) == 104
