"""`--backend vllm`'s settings, without vLLM: the protocol's dtype, sampling, seeds, stops, BOS and progress are what
reaches vLLM (a stand-in `vllm` module records the calls), and bad input is refused before vLLM is imported.

The same backend against transformers on a real merged export, generation by generation: test_vllm_parity.py
(runs where vLLM is installed)."""

import json
import sys
import types

import pytest

from hellora.eval.generation import SamplingSettings
from hellora.eval.vllm_backend import (
    HF_DEFAULT_TOP_K,
    VllmEngineSettings,
    checkpoint_dtype,
    engine_dtype,
    generate_vllm,
    progress_bar_allowed,
    sampling_kwargs,
)
from hellora.utils.errors import HelloraError


def write_checkpoint(folder, config=None, generation_config=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "olmoe", "dtype": "float32"}
                                                   if config is None else config))
    if generation_config is not None:
        (folder / "generation_config.json").write_text(json.dumps(generation_config))
    return folder


def test_auto_is_the_checkpoints_own_dtype_as_transformers_reads_it(tmp_path):
    assert checkpoint_dtype(write_checkpoint(tmp_path / "a")) == "float32"
    assert checkpoint_dtype(write_checkpoint(tmp_path / "b", {"torch_dtype": "bfloat16"})) == "bfloat16"
    assert engine_dtype("auto", tmp_path / "b") == "bfloat16"
    assert engine_dtype("fp16", tmp_path / "a") == "float16"  # an explicit dtype wins, aliases resolved
    with pytest.raises(HelloraError, match="--dtype: 'int8'"):
        engine_dtype("int8", tmp_path / "a")


@pytest.mark.parametrize("config, why", [(None, "no config.json"), ([1], "expected a JSON object"),
                                         ({"model_type": "x"}, "records no dtype"),
                                         ({"dtype": "float64"}, "'float64' is not one of")])
def test_a_bad_checkpoint_config_is_refused_naming_the_file(tmp_path, config, why):
    folder = tmp_path / "m"
    folder.mkdir()
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(HelloraError, match=why):
        checkpoint_dtype(folder)


def test_greedy_settings_become_temperature_zero_with_the_protocols_stops_and_special_tokens():
    settings = SamplingSettings(max_new_tokens=64, stop=("\n\n", "###"), skip_special_tokens=False)
    kwargs = sampling_kwargs(settings, prompt_tokens=10)
    assert kwargs == {"n": 1, "max_tokens": 64, "stop": ["\n\n", "###"], "skip_special_tokens": False,
                      "ignore_eos": False, "include_stop_str_in_output": False, "temperature": 0.0}


def test_sampled_settings_keep_temperature_top_p_top_k_and_give_each_sample_its_own_seed():
    settings = SamplingSettings(do_sample=True, temperature=0.2, top_p=0.95, num_samples=3, seed=7)
    first = sampling_kwargs(settings, 5, prompt_index=0, default_top_k=40)
    second = sampling_kwargs(settings, 5, prompt_index=1, default_top_k=40)
    assert (first["temperature"], first["top_p"], first["top_k"], first["n"]) == (0.2, 0.95, 40, 3)
    # vLLM gives sample j of a request seed + j: prompts' seed ranges must not overlap
    assert {first["seed"] + j for j in range(3)}.isdisjoint({second["seed"] + j for j in range(3)})
    off = sampling_kwargs(SamplingSettings(do_sample=True, top_k=0), 5)
    assert off["top_k"] == 0  # the bigcode harness's "no top-k" stays off


def test_a_prompt_plus_generation_budget_becomes_each_prompts_max_tokens():
    settings = SamplingSettings(max_new_tokens=512, max_length=20)
    assert sampling_kwargs(settings, 12)["max_tokens"] == 8
    assert sampling_kwargs(settings, 20) is None  # the prompt fills the budget: an empty completion, as hf


def test_top_k_none_is_transformers_default_the_checkpoints_or_50(tmp_path):
    from hellora.eval.vllm_backend import default_top_k

    assert default_top_k(write_checkpoint(tmp_path / "a")) == HF_DEFAULT_TOP_K == 50
    assert default_top_k(write_checkpoint(tmp_path / "b", generation_config={"top_k": 20})) == 20
    with pytest.raises(HelloraError, match="generation config .* top_k"):
        default_top_k(write_checkpoint(tmp_path / "c", generation_config={"top_k": "many"}))


def test_tqdm_disable_turns_vllms_bar_off(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert progress_bar_allowed(True) and not progress_bar_allowed(False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_bar_allowed(True)


class _Recorder:
    """A stand-in for the `vllm` module: records LLM(...) and generate(...) and answers like vLLM's objects."""

    def __init__(self, tokenizer, loaded_dtype="float32"):
        self.tokenizer, self.loaded_dtype, self.calls = tokenizer, loaded_dtype, {}
        recorder = self

        class SamplingParams:
            def __init__(self, **kwargs):
                self.kwargs = kwargs

        class LLM:
            def __init__(self, **kwargs):
                recorder.calls["LLM"] = kwargs
                config = types.SimpleNamespace(dtype=f"torch.{recorder.loaded_dtype}",
                                               try_get_generation_config=lambda: {"eos_token_id": [2, 5]})
                self.llm_engine = types.SimpleNamespace(model_config=config)

            def get_tokenizer(self):
                return recorder.tokenizer

            def generate(self, inputs, params, use_tqdm=True):
                recorder.calls["generate"] = (inputs, params, use_tqdm)
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"out{i}.{j}")
                                                       for j in range(p.kwargs["n"])])
                        for i, p in enumerate(params)]

        self.module = types.ModuleType("vllm")
        self.module.__version__ = "0.0-stand-in"
        self.module.LLM, self.module.SamplingParams = LLM, SamplingParams


class _BosTokenizer:
    """Characters as ids, BOS (1) first when special tokens are added."""

    eos_token_id = 2

    def encode(self, text, add_special_tokens=True):
        return [1] * add_special_tokens + [ord(c) for c in text]


@pytest.fixture
def fake_vllm(monkeypatch):
    recorder = _Recorder(_BosTokenizer())
    monkeypatch.setitem(sys.modules, "vllm", recorder.module)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    return recorder


def test_the_protocols_dtype_seed_bos_and_progress_reach_vllm_and_the_record_says_what_ran(fake_vllm, tmp_path,
                                                                                         monkeypatch):
    folder = write_checkpoint(tmp_path / "merged")
    settings = SamplingSettings(max_new_tokens=16, seed=3, add_special_tokens=False, stop=("\n",))
    monkeypatch.setenv("TQDM_DISABLE", "1")
    result = generate_vllm(VllmEngineSettings(str(folder), dtype="auto"), ["ab", "cd"], settings)
    llm = fake_vllm.calls["LLM"]
    assert (llm["dtype"], llm["seed"], llm["generation_config"], llm["tokenizer"]) == ("float32", 3, "vllm",
                                                                                       str(folder))
    inputs, params, use_tqdm = fake_vllm.calls["generate"]
    assert inputs == [{"prompt_token_ids": [97, 98]}, {"prompt_token_ids": [99, 100]}]  # no BOS, as asked
    assert params[0].kwargs["stop"] == ["\n"] and params[0].kwargs["temperature"] == 0.0
    assert use_tqdm is False
    assert result.completions == [["out0.0"], ["out1.0"]]
    assert result.engine["name"] == "vllm" and result.engine["version"] == "0.0-stand-in"
    assert result.engine["dtype"] == "float32" and result.engine["eos_token_ids"] == [2, 5]


def test_prompts_over_the_budget_get_empty_completions_in_place(fake_vllm, tmp_path):
    folder = write_checkpoint(tmp_path / "merged")
    settings = SamplingSettings(max_length=6, num_samples=2, do_sample=True)
    result = generate_vllm(VllmEngineSettings(str(folder)), ["a", "abcdefghij", "b"], settings)
    assert result.completions == [["out0.0", "out0.1"], ["", ""], ["out1.0", "out1.1"]]
    inputs, params, _ = fake_vllm.calls["generate"]
    assert len(inputs) == 2 and params[0].kwargs["max_tokens"] == 6 - len(inputs[0]["prompt_token_ids"])


def test_a_model_vllm_loads_in_another_dtype_is_refused_not_scored(fake_vllm, tmp_path):
    fake_vllm.loaded_dtype = "bfloat16"
    with pytest.raises(HelloraError, match="asked vLLM for float32 but it loaded the model in bfloat16"):
        generate_vllm(VllmEngineSettings(str(write_checkpoint(tmp_path / "m"))), ["a"], SamplingSettings())


def test_without_vllm_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    with pytest.raises(HelloraError, match=r"vLLM cannot be imported .*\.\[vllm\]"):
        generate_vllm(VllmEngineSettings(str(write_checkpoint(tmp_path / "m"))), ["a"], SamplingSettings())
    with pytest.raises(HelloraError, match="no config.json"):  # bad input is named first, vLLM or not
        generate_vllm(VllmEngineSettings(str(tmp_path / "nothing")), ["a"], SamplingSettings())


def test_the_cli_refuses_vllm_input_before_writing_anything(tmp_path, monkeypatch):
    from hellora.cli import main

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "sort-test.jsonl"
    data.write_text(json.dumps({"prompt": "sort: 2 1\n", "answer": "1 2", "skill": "sort"}) + "\n")
    common = ["eval", "--task", "skill", "--data", str(data), "--backend", "vllm", "--out", "ev"]
    assert main([*common, "--model", "missing"]) != 0
    assert main([*common, "--model", str(tmp_path), "--adapter", "a"]) != 0
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"dtype": "int4"}')
    assert main([*common, "--model", "m"]) != 0
    assert not (tmp_path / "ev").exists()
