"""Bad input: one clear message naming the field, file or line; exit status 2; no traceback; nothing overwritten."""

import json
import subprocess
import sys

from transformers import AutoConfig, AutoModelForCausalLM

from hellora.cli import main
from hellora.data import build_tiny_tokenizer
from hellora.profiling import ExpertProfile
from tests.conftest import GSM8K


def _fails(capsys, args, *needles):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    errors = [line for line in err.splitlines() if "error:" in line]  # progress bars of model loading aside
    assert "Traceback" not in err and len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    err = errors[0]
    for needle in needles:
        assert needle in err, err
    return err


def _train(recipe, *overrides):
    return ["train", str(recipe), *overrides, "--no-progress"]


def test_unknown_recipe_key(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "train.learning_rat=0.1"), "unknown key train.learning_rat")


def test_unknown_section(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "trainer.epochs=1"), "unknown section 'trainer'")


def test_unknown_key_inside_recipe_file(write_recipe, capsys, tmp_path):
    recipe = write_recipe(train="{batch_sise: 8}")
    _fails(capsys, _train(recipe), "unknown key train.batch_sise", str(recipe))


def test_unknown_method(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "adapter.method=qlora-x"), "adapter.method", "qlora-x")


def test_k_larger_than_the_number_of_experts(write_recipe, capsys, tmp_path):
    _fails(capsys, _train(write_recipe(), "selection.k=9"), "k: number of hot experts", "[1, 8]")
    assert not (tmp_path / "run").exists()


def test_rank_zero(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "adapter.r=0"), "adapter.r")


def test_wrong_value_type(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "train.micro_batch_size=four"), "train.micro_batch_size", "expected int")


def test_override_without_equals(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "train.epochs"), "expected key=value")


def test_missing_recipe_file(capsys, tmp_path):
    _fails(capsys, _train(tmp_path / "nope.yaml"), "recipe not found", "nope.yaml")


def test_invalid_yaml_names_the_line(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: x\ntrain: {batch_size: [\n")
    _fails(capsys, _train(bad), "bad.yaml", "line")


def test_empty_dataset(write_recipe, capsys, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _fails(capsys, _train(write_recipe(), f"data.train={empty}"), "no records", "empty.jsonl")


def test_malformed_jsonl_line_is_named(write_recipe, capsys, tmp_path):
    data = tmp_path / "broken.jsonl"
    lines = open(GSM8K).read().splitlines()[:5]
    lines[2] = lines[2][:40]
    data.write_text("\n".join(lines) + "\n")
    _fails(capsys, _train(write_recipe(), f"data.train={data}"), "broken.jsonl", "line 3")


def test_missing_field(write_recipe, capsys, tmp_path):
    data = tmp_path / "nofield.jsonl"
    data.write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n" + json.dumps({"question": "2+2?"}) + "\n")
    _fails(capsys, _train(write_recipe(), f"data.train={data}"), "answer", "nofield.jsonl")


def test_missing_data_file(write_recipe, capsys, tmp_path):
    _fails(capsys, _train(write_recipe(), f"data.train={tmp_path}/absent.jsonl"), "absent.jsonl")


def test_unknown_task(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "data.task=mmlu"), "mmlu")


def test_non_moe_model(write_recipe, capsys, tmp_path):
    dense = tmp_path / "dense"
    config = AutoConfig.for_model("qwen2", vocab_size=104, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=2)
    AutoModelForCausalLM.from_config(config).save_pretrained(dense)
    build_tiny_tokenizer().save_pretrained(dense)
    _fails(capsys, _train(write_recipe(), f"model.name={dense}"), "no Mixture-of-Experts layers", "Qwen2MLP")
    assert not (tmp_path / "run").exists()


def test_missing_model_folder(write_recipe, capsys, tmp_path):
    _fails(capsys, _train(write_recipe(), f"model.name={tmp_path}/no-model", "model.tokenizer=tiny"), "no-model")


def test_profile_from_another_model(write_recipe, capsys, tmp_path):
    other = ExpertProfile(layers=[0, 1], counts=[[1] * 8, [1] * 8], mass=[], tokens=[], num_experts=8, top_k=2,
                          model_id="elsewhere", fingerprint="0123456789abcdef")
    other.save(tmp_path / "other.json")
    _fails(capsys, _train(write_recipe(), f"profile.path={tmp_path}/other.json"), "another model", "elsewhere")


def test_finished_run_folder_is_not_overwritten(write_recipe, capsys, tmp_path):
    recipe = write_recipe()
    assert main(_train(recipe)) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    _fails(capsys, _train(recipe), "already holds a finished run")
    _fails(capsys, _train(recipe, "train.max_steps=2"), "already holds a finished run")
    after = {p: p.read_bytes() for p in (tmp_path / "run").rglob("*") if p.is_file()}
    assert after == before


def test_unfinished_run_with_another_config_is_refused(write_recipe, capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("model: {name: other}\n")
    _fails(capsys, _train(write_recipe()), "another config")
    assert (run / "config.yaml").read_text() == "model: {name: other}\n"


def test_foreign_nonempty_output_folder(write_recipe, capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    _fails(capsys, _train(write_recipe()), "not empty")
    assert (tmp_path / "run" / "notes.txt").read_text() == "mine"


def test_batch_not_multiple_of_micro_batch(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "train.batch_size=10", "adapter.method=lora"), "train.batch_size 10")


def test_batch_larger_than_dataset(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "train.batch_size=400", "adapter.method=lora"), "larger than the dataset")


def test_bad_warmup_fraction(write_recipe, capsys, tmp_path):
    _fails(capsys, _train(write_recipe(), "profile.fraction=1.5"), "fraction")
    assert not (tmp_path / "run").exists()


def test_unknown_profile_mode(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "profile.mode=guess"), "profile.mode")


def test_unknown_schedule(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "train.lr_scheduler=wavy"), "train.lr_scheduler")


def test_adapter_from_another_model_is_refused_by_export(capsys, tmp_path, write_recipe):
    assert main(_train(write_recipe())) == 0
    capsys.readouterr()
    _fails(capsys, ["export", "--adapter", str(tmp_path / "run" / "adapter"), "--format", "peft", "--out",
                    str(tmp_path / "exp"), "--model", "mixtral-8x7b"], "another model")
    assert not (tmp_path / "exp").exists()


def test_console_script_prints_one_line_and_exit_2(write_recipe):
    done = subprocess.run([sys.executable, "-m", "hellora.cli", *_train(write_recipe(), "selection.k=0")],
                          capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hellora train: error: override selection.k=0: selection.k:")


def test_override_into_a_scalar_field(write_recipe, capsys):
    _fails(capsys, _train(write_recipe(), "train.epochs=1", "train.epochs.x=2"), "train.epochs is not a mapping")


def test_a_run_folder_in_use_by_another_process(write_recipe, capsys, tmp_path):
    from hellora.utils.io import folder_lock

    run = tmp_path / "busy"
    with folder_lock(run):  # another `hellora train` holding this output_dir
        _fails(capsys, _train(write_recipe(), f"output_dir={run}"), str(run), "in use by another hellora process",
               f"pid {__import__('os').getpid()}")
    assert not run.exists()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    from hellora.utils.io import folder_lock

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from hellora.utils.io import folder_lock\n"
                               f"with folder_lock({str(run)!r}):\n print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.kill()
    holder.wait()
    with folder_lock(run):  # taken at once: the kernel released the dead holder's lock
        pass
