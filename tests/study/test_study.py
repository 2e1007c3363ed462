"""The proxy study end to end at toy size: every arm of both recipes, the study.json contract on 3 bases, resume
after a removed run, config errors, and the scoring shortcut."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from hellora.cli import main
from hellora.study.arms import ARMS, ProfileSource, ordered
from hellora.study.config import StudyConfig, sqrt2_grid
from hellora.utils.errors import HelloraError

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes" / "proxy"
TINY = ["skills=[copy, upper]", "targets=[shift]", "target_pretrain=0", "pretrain_per_skill=48", "hidden_size=32",
        "intermediate_size=32", "layers=2", "experts=4", "top_k=2", "pretrain_steps=3", "pretrain_batch=16",
        "ft_seeds=[0]", "finetune_examples=32", "val_examples=8", "test_examples=8", "other_examples=4",
        "finetune_steps=2", "checkpoints=2", "batch_size=8", "rank=2", "fft_lr_grid=[0.0001]", "workers=1",
        "exclude_before_above=1.0", "iso_target=1", "pilot_seed=null"]


def _finished(out: Path) -> dict[str, int]:
    """Run folder -> mtime of its study_run.json (a run being written sits in a hidden `.NAME.*.tmp` folder)."""
    return {str(p.parent.relative_to(out)): p.stat().st_mtime_ns for p in out.glob("*/runs/*/*/study_run.json")
            if not p.parent.name.startswith(".")}


def _recipe_arms() -> set[str]:
    arms: set[str] = set()
    for path in RECIPES.glob("*.yaml"):
        arms |= set(StudyConfig.from_yaml(path).arms)
    return arms


@pytest.mark.slow
def test_every_arm_of_both_recipes_runs_end_to_end(tmp_path):
    """One base, one lr, every arm the recipes name (LoRI-S from LoRI-D, the oracle from LoRA, FFT, the
    retention-aware rule): a refactor that breaks one arm fails here."""
    arms = sorted(_recipe_arms())
    assert {"lora", "hellora", "random", "hellora-pure", "retain", "hellori-s", "oracle", "forward-count",
            "fft", "warmup-100"} <= set(arms)
    assert main(["proxy", *TINY, "base_seeds=[0]", "lr_grid=[0.002]", f"arms=[{', '.join(arms)}]",
                 "primary=[]", "--out", str(tmp_path), "--no-progress"]) == 0
    records = {p.parent.parent.name: json.loads(p.read_text()) for p in tmp_path.glob("shift/runs/*/*/study_run.json")}
    assert set(records) == set(arms)
    for arm, r in records.items():
        assert not r["diverged"], arm
        assert [c["step"] for c in r["checkpoints"]] == [1, 2], arm
        assert r["trainable"] > 0, arm
    assert records["hellori-s"]["hot_experts"] is None  # its placement comes from the LoRI-D adapter
    assert records["oracle"]["profile"] == "oracle" and records["forward-count"]["profile"] == "forward"
    assert records["warmup-100"]["profile"] == "warmup 1"
    assert len(records["hellora-2k"]["hot_experts"]["0"]) == 4 and len(records["retain"]["hot_experts"]["0"]) == 2
    assert records["fft"]["trainable_pct"] == pytest.approx(100.0)
    storage = {arm: r["expert_storage"] for arm, r in records.items()}
    assert storage["hellora"] == {"cold_experts": "keep", "hot_experts": "keep"}
    assert storage["hellora-cold-int8"] == {"cold_experts": "int8", "hot_experts": "keep"}
    assert storage["hellora-cold-nf4"] == {"cold_experts": "nf4", "hot_experts": "keep"}
    assert storage["hellora-all-nf4"] == {"cold_experts": "nf4", "hot_experts": "nf4"}
    assert storage["lora-all-nf4"] == {"cold_experts": "keep", "hot_experts": "nf4"}  # LoRA: every expert is hot


SHAPE = ["pretrain_per_skill=48", "hidden_size=32", "intermediate_size=32", "layers=2", "experts=4", "top_k=2",
         "pretrain_steps=3", "pretrain_batch=16", "finetune_examples=32", "val_examples=8", "test_examples=8",
         "other_examples=4", "finetune_steps=2", "checkpoints=2", "batch_size=8", "rank=2", "workers=1",
         "exclude_before_above=1.0", "text_files=[]", "text_examples=0"]  # no ../shared text in CI


@pytest.mark.slow
@pytest.mark.parametrize("recipe", sorted(p.name for p in RECIPES.glob("*.yaml")))
def test_each_shipped_recipe_runs_as_written_at_a_tiny_shape(recipe, tmp_path):
    """`hellora proxy recipes/proxy/X.yaml` itself (its targets, steps per target, warm-up lr, arms and
    primaries), shrunk to a toy shape, one base, one seed and one lr: each command the docs give still runs."""
    cfg = StudyConfig.from_yaml(RECIPES / recipe)
    steps = ", ".join(f"{t}: 3" for t in cfg.target_steps)
    assert main(["proxy", str(RECIPES / recipe), *SHAPE, f"target_steps={{{steps}}}",
                 f"base_seeds=[{cfg.base_seeds[0]}]", f"ft_seeds=[{cfg.ft_seeds[0]}]", f"lr_grid=[{cfg.lr_grid[0]}]",
                 f"fft_lr_grid=[{cfg.fft_lr_grid[0]}]", f"warmup_lr={cfg.warmup_lr}",  # the recipe's, resolved
                 "pilot_seed=null", "--out", str(tmp_path), "--no-progress"]) == 0
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["runs_finished"] == study["runs_planned"] == len(cfg.targets) * len(cfg.arms)
    for target in cfg.target_steps:
        assert study["design"]["checkpoint_steps"][target][-1] == 3


@pytest.mark.slow
def test_three_bases_give_the_study_json_contract_and_resume(tmp_path, capsys):
    """Another target, other seeds, 3 bases, every default arm: per arm n/mean/std/CI over bases, per primary
    contrast bases/CI/p/verdict; a rerun redoes nothing and a removed run folder is redone alone."""
    args = ["proxy", *TINY, "base_seeds=[3, 4, 5]", "lr_grid=[0.002, 0.004]", "--out", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["format"] == "hellora.proxy-study/4"
    arms = study["targets"]["shift"]["arms"]
    assert set(arms) == set(StudyConfig().arms)
    for row in arms.values():
        test = row["test"]
        assert test["n_bases"] == 3 and test["std"] is not None and len(test["ci95"]) == 2
        assert [c["applied_to"] for c in row["lr_choices"]] == [[3, 5], [4]]  # cross-fitted halves
        assert all(not c["in_sample"] for c in row["lr_choices"])
    assert len(study["primary"]) == 3
    for row in study["primary"]:
        assert set(row) >= {"n_bases", "p_holm", "verdict"}
    tested = [r for r in study["primary"] if r["metric"] == "test"]
    assert all(r["n_bases"] == 3 and r["ci95"] is not None and r["df"] == 2 and r["p"] is not None for r in tested)
    assert (tmp_path / "data" / "runs.jsonl").is_file() and (tmp_path / "figures" / "frontier.png").is_file()
    assert "[primary]" in capsys.readouterr().out

    before = _finished(tmp_path)
    assert len(before) == 3 * 5 * 2
    assert main(args) == 0
    assert _finished(tmp_path) == before
    shutil.rmtree(tmp_path / "shift" / "runs" / "hellora" / "b4-s0-lr0.002")
    assert main(args) == 0
    after = _finished(tmp_path)
    assert {k for k in after if after[k] != before.get(k)} == {"shift/runs/hellora/b4-s0-lr0.002"}
    # a grid widened at both ends adds exactly its new learning rates (the warm-up's lr, 0.004, stays)
    wider = [a for a in args if not a.startswith("lr_grid=")] + ["lr_grid=[0.001, 0.002, 0.004, 0.008]"]
    # widening only at the top would move the grid's middle, and with it an unset warm-up lr: refused, not rerun
    top = [a for a in args if not a.startswith("lr_grid=")] + ["lr_grid=[0.002, 0.004, 0.008, 0.016]"]
    assert main(top) == 2
    assert "field 'warmup_lr' differs" in capsys.readouterr().err
    assert main(wider) == 0
    widened = _finished(tmp_path)
    assert len(widened) == 3 * 5 * 4 and all(widened[k] == v for k, v in after.items())
    after = widened

    # the page regenerates from the data folder alone, and an edited study.json is refused
    from hellora.study.results_doc import MARKER, write_results

    page = tmp_path / "docs" / "results.md"
    page.parent.mkdir()
    page.write_text("# Results\n\nhand-written conclusion\n\n" + MARKER + "\nold tables\n")
    text = write_results(tmp_path / "data", page, tmp_path / "docs" / "img").read_text()
    assert "hand-written conclusion" in text and "old tables" not in text
    assert "](img/frontier.png)" in text and "## Primary contrasts" in text
    edited = json.loads((tmp_path / "data" / "study.json").read_text())
    edited["primary"][0]["p"] = 0.0
    (tmp_path / "data" / "study.json").write_text(json.dumps(edited))
    with pytest.raises(HelloraError, match="does not equal its recomputation"):
        write_results(tmp_path / "data", page, tmp_path / "docs" / "img")


@pytest.mark.slow
def test_each_target_runs_its_own_steps(tmp_path):
    """`target_steps` lengthens one target's runs (the pilot calibrates steps per target): its checkpoints follow
    its own length, the other target keeps `finetune_steps`, and the analysis reads each run's own last step."""
    assert main(["proxy", *TINY, "targets=[shift, sort]", "target_steps={sort: 4}", "base_seeds=[0]",
                 "lr_grid=[0.002]", "arms=[lora]", "primary=[]", "--out", str(tmp_path), "--no-progress"]) == 0
    steps = {p.parts[-5]: [c["step"] for c in json.loads(p.read_text())["checkpoints"]]
             for p in tmp_path.glob("*/runs/lora/*/study_run.json")}
    assert steps == {"shift": [1, 2], "sort": [2, 4]}
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["design"]["checkpoint_steps"] == {"shift": [1, 2], "sort": [2, 4]}
    assert all(study["targets"][t]["arms"]["lora"]["test"]["n_bases"] == 1 for t in ("shift", "sort"))


def test_a_cached_warm_up_profile_made_at_another_lr_is_refused(tmp_path):
    """The warm-up profile is cached per cell; one made at another warm-up lr is an error, never reused."""
    from hellora.profiling import ExpertProfile
    from hellora.study.bases import warmup_profile
    from hellora.study.paths import warmup_file

    cfg = StudyConfig(lr_grid=[0.001, 0.002, 0.004], pilot_seed=None)
    assert cfg.warmup_lr == 0.002  # unset: the middle of the grid, resolved once and saved with the run
    path = warmup_file(tmp_path, "shift", 0, 0, 0.1)
    path.parent.mkdir(parents=True)
    ExpertProfile(layers=[0], counts=[[1, 0]], mass=[[1.0, 0.0]], tokens=[1], num_experts=2, top_k=1, mode="warmup",
                  meta={"lr": 0.004}).save(path)
    with pytest.raises(HelloraError, match="made at lr 0.004, the config's warmup_lr is 0.002"):
        warmup_profile(cfg, tmp_path, "shift", 0, 0, 0.1, model=None, data=None, accelerator=None)
    assert warmup_profile(StudyConfig(lr_grid=[0.001, 0.002, 0.004], warmup_lr=0.004, pilot_seed=None), tmp_path,
                          "shift", 0, 0, 0.1, model=None, data=None, accelerator=None).counts == [[1, 0]]


def test_config_errors_name_the_field():
    with pytest.raises(HelloraError, match="unknown key 'layerz'"):
        StudyConfig.from_yaml(None, {"layerz": 2})
    with pytest.raises(HelloraError, match="target_steps names 'max', which is not in targets"):
        StudyConfig(target_steps={"max": 10})
    with pytest.raises(HelloraError, match="target_steps.shift must be a positive integer"):
        StudyConfig(target_steps={"shift": 0})
    with pytest.raises(HelloraError, match="warmup_lr must be positive"):
        StudyConfig(warmup_lr=0)
    with pytest.raises(HelloraError, match="target_steps must be a mapping"):
        StudyConfig(target_steps=[10])
    with pytest.raises(HelloraError, match="unknown arm 'magic'"):
        StudyConfig(arms=["magic"])
    with pytest.raises(HelloraError, match="also in skills"):
        StudyConfig(skills=["copy", "word"], targets=["word"])
    with pytest.raises(HelloraError, match="needs arm 'hellori-d'"):
        StudyConfig(arms=["hellori-s"])
    with pytest.raises(HelloraError, match="needs arm 'lora'"):
        StudyConfig(arms=["oracle"], primary=[])
    with pytest.raises(HelloraError, match="unknown skill"):
        StudyConfig(targets=["nope"])
    with pytest.raises(HelloraError, match="ft_seeds"):
        StudyConfig(ft_seeds=[1, 1])
    with pytest.raises(HelloraError, match="pilot_seed 3 is also in base_seeds"):
        StudyConfig(base_seeds=[1, 3], pilot_seed=3)
    with pytest.raises(HelloraError, match="at most 3"):
        StudyConfig(primary=[{"a": "hellora", "b": "lora"}] * 4)
    with pytest.raises(HelloraError, match=r"primary\[0\].margin applies to kind noninferiority"):
        StudyConfig(primary=[{"a": "hellora", "b": "lora", "margin": 2}])
    with pytest.raises(HelloraError, match=r"primary\[0\] names arm 'fft'"):
        StudyConfig(primary=[{"a": "fft", "b": "lora"}])
    with pytest.raises(HelloraError, match=r"primary\[0\].metric"):
        StudyConfig(primary=[{"a": "hellora", "b": "lora", "metric": "speed"}])
    with pytest.raises(HelloraError, match="lr_grid must be increasing"):
        StudyConfig(lr_grid=[0.01, 0.005])


def test_out_folder_of_another_config_is_refused(tmp_path):
    from hellora.study.runner import _check_config

    _check_config(StudyConfig(), tmp_path)
    _check_config(StudyConfig(arms=["lora"], ft_seeds=[0], primary=[]), tmp_path)  # additive fields may change
    with pytest.raises(HelloraError, match="'rank' differs"):
        _check_config(StudyConfig(rank=4), tmp_path)
    # a config saved with every field (as before lr_grid became additive) still resumes with a widened grid
    from dataclasses import asdict

    (tmp_path / "study_config.json").write_text(json.dumps(asdict(StudyConfig())))
    wider = [0.002, 0.004, 0.00566, 0.008, 0.0113, 0.016]
    with pytest.raises(HelloraError, match="'warmup_lr' differs"):  # the wider grid's middle is another lr
        _check_config(StudyConfig(lr_grid=wider), tmp_path)
    _check_config(StudyConfig(lr_grid=wider, warmup_lr=StudyConfig().warmup_lr), tmp_path)


def test_shipped_configs_load_with_sqrt2_grids_and_runs_start_after_their_sources():
    for path in RECIPES.glob("*.yaml"):
        cfg = StudyConfig.from_yaml(path)
        assert set(cfg.arms) <= set(ARMS) and len(cfg.primary_contrasts()) <= 3
        if path.name in ("cpu.yaml", "ablations.yaml", "quant.yaml"):
            assert len(cfg.base_seeds) >= 10 or path.name != "cpu.yaml"
            assert len(cfg.lr_grid) >= 4
            ratios = [b / a for a, b in zip(cfg.lr_grid, cfg.lr_grid[1:])]
            assert all(abs(r - 2 ** 0.5) < 0.01 for r in ratios), path
    names = ordered(list(ARMS))
    assert names.index("hellori-d") < names.index("hellori-s")
    assert names.index("lora") < names.index("oracle")
    assert ARMS["oracle"].profile is ProfileSource.ORACLE
    assert sqrt2_grid(0.004, 4) == [0.00238, 0.00336, 0.00476, 0.00673]


def test_teacher_forced_exact_match_is_greedy_decoding():
    """On a random model: teacher-forcing the model's own greedy continuation scores 100%; one changed token
    in an example's answer makes exactly that example wrong."""
    from hellora.data import build_tiny_tokenizer, encode_prompt
    from hellora.data.skills import generate_skill_examples
    from hellora.data.tokenize import IGNORE_INDEX
    from hellora.study.scoring import score_features
    from hellora.study.skill_moe import build_skill_moe

    tok = build_tiny_tokenizer()
    model = build_skill_moe(len(tok), hidden_size=32, layers=2, experts=4, top_k=2, seed=3)
    model.config.output_router_logits = False
    model.eval()
    features = []
    for ex in generate_skill_examples("copy", 6, seed=0):
        prompt = encode_prompt(tok, ex["prompt"])
        out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                             max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=tok.eos_token_id)
        answer = out[0, len(prompt):].tolist()
        features.append({"input_ids": prompt + answer, "attention_mask": [1] * (len(prompt) + len(answer)),
                         "labels": [IGNORE_INDEX] * len(prompt) + answer})
    assert score_features(model, features, batch_size=4)["exact_match"] == 1.0
    wrong = dict(features[2])
    wrong["labels"] = list(wrong["labels"])
    wrong["labels"][-1] = (wrong["labels"][-1] + 1) % len(tok)
    scores = score_features(model, features[:2] + [wrong] + features[3:], batch_size=4)
    assert scores["exact_match"] == pytest.approx(5 / 6) and scores["token_accuracy"] < 1.0


@pytest.mark.slow
def test_teacher_forced_scoring_agrees_with_generation_per_example():
    """A briefly trained model (a few copy prompts right, most wrong): hellora.study.skill_moe.accuracy (greedy
    generate, decode, compare) and score_features (one teacher-forced pass) agree on every single example."""
    from accelerate import Accelerator

    from hellora.data import build_tiny_tokenizer
    from hellora.data.skills import generate_skill_examples
    from hellora.study.scoring import score_features
    from hellora.study.skill_moe import StepSchedule, accuracy, build_skill_moe, skill_features, train_steps

    torch.manual_seed(0)
    tok = build_tiny_tokenizer()
    model = build_skill_moe(len(tok), hidden_size=48, layers=2, experts=4, top_k=2, seed=0)
    train_steps(model, skill_features(tok, generate_skill_examples("copy", 512, 0)), StepSchedule(250, 3e-3, 32),
                Accelerator(cpu=True), "copy", progress=False)
    model.config.output_router_logits = False
    test = generate_skill_examples("copy", 64, 1, split="test")
    by_generation = [accuracy(model, tok, [e]) for e in test]
    by_forcing = [score_features(model, skill_features(tok, [e]))["exact_match"] for e in test]
    assert by_generation == by_forcing
    assert accuracy(model, tok, test) == score_features(model, skill_features(tok, test))["exact_match"]


def test_the_ablations_run_on_the_primary_studys_own_bases():
    """The targets are part of the pretraining mixture, so a recipe that changes them changes its bases: the
    ablations must pretrain exactly the primary's bases (same seeds, same pretraining record)."""
    cpu = StudyConfig.from_yaml(RECIPES / "cpu.yaml")
    for name in ("ablations.yaml", "quant.yaml"):
        ablations = StudyConfig.from_yaml(RECIPES / name)
        assert set(ablations.base_seeds) <= set(cpu.base_seeds) and len(ablations.base_seeds) >= 3
        for seed in ablations.base_seeds:
            assert ablations.pretrain_record(seed) == cpu.pretrain_record(seed)


def test_a_study_whose_bases_were_all_excluded_is_an_error_not_a_result():
    from hellora.cli.run_commands import nothing_analysed

    kept = {"bases_kept": [1], "bases_excluded": [2]}
    none_kept = {"bases_kept": [], "bases_excluded": [20, 21, 22]}
    assert nothing_analysed({"targets": {"shift": kept, "count": none_kept}}) is None
    why = nothing_analysed({"targets": {"count": none_kept}})
    assert why is not None and "count: 3 excluded" in why and "\n" not in why
