"""The small-study core: the demo and the study describe their base through one spec, and the shared
build-and-pretrain path equals building and training by hand."""

import torch
from accelerate import Accelerator

from hellora.adapters import AdapterConfig
from hellora.data import build_tiny_tokenizer
from hellora.data.skills import generate_skill_examples
from hellora.demo.run import DemoConfig
from hellora.study.config import StudyConfig
from hellora.study.pretrain_finetune import SkillMoESpec, adapted_copy, mixture_features, pretrain_skill_moe
from hellora.study.skill_moe import StepSchedule, build_skill_moe, skill_features, train_steps


def test_both_configs_map_their_fields_onto_the_spec():
    demo = DemoConfig(hidden_size=48, layers=2, experts=4, top_k=1, pretrain_steps=7, pretrain_lr=1e-3, batch_size=12)
    assert demo.moe_spec() == SkillMoESpec(hidden_size=48, layers=2, experts=4, top_k=1, pretrain_steps=7,
                                           pretrain_lr=1e-3, pretrain_batch=12)
    study = StudyConfig(hidden_size=32, intermediate_size=40, layers=3, experts=6, top_k=2, aux_loss=0.05,
                        pretrain_steps=9, pretrain_lr=2e-3, pretrain_batch=16)
    assert study.moe_spec() == SkillMoESpec(hidden_size=32, intermediate_size=40, layers=3, experts=6, top_k=2,
                                            aux_loss=0.05, pretrain_steps=9, pretrain_lr=2e-3, pretrain_batch=16)


def test_mixture_features_concatenate_each_skill_in_order():
    tok = build_tiny_tokenizer()
    got = mixture_features(tok, [("upper", 3), ("copy", 2)], seed=5)
    want = (skill_features(tok, generate_skill_examples("upper", 3, seed=5))
            + skill_features(tok, generate_skill_examples("copy", 2, seed=5)))
    assert got == want


def test_pretrain_skill_moe_equals_building_and_training_by_hand():
    tok = build_tiny_tokenizer()
    spec = SkillMoESpec(hidden_size=32, intermediate_size=40, layers=2, experts=4, top_k=2, pretrain_steps=3,
                        pretrain_lr=3e-3, pretrain_batch=8, aux_loss=0.05)
    data = mixture_features(tok, [("copy", 16), ("upper", 16)], seed=0)
    model, result = pretrain_skill_moe(spec, len(tok), data, Accelerator(cpu=True), init_seed=4, train_seed=2,
                                       progress=False)
    ref = build_skill_moe(len(tok), hidden_size=32, intermediate_size=40, layers=2, experts=4, top_k=2, seed=4,
                          aux_loss=0.05)
    ref_result = train_steps(ref, data, StepSchedule(3, 3e-3, 8, seed=2), Accelerator(cpu=True), "ref", progress=False)
    assert result.final_loss == ref_result.final_loss
    assert model.config.output_router_logits is False
    ref_state = ref.state_dict()
    for name, value in model.state_dict().items():
        assert torch.equal(value, ref_state[name]), name


def test_adapted_copy_leaves_the_base_untouched():
    tok = build_tiny_tokenizer()
    base = build_skill_moe(len(tok), hidden_size=32, layers=2, experts=4, top_k=2, seed=0)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    tuned = adapted_copy(base, AdapterConfig(method="lora", r=2, alpha=4, seed=0))
    assert any("lora" in k for k in tuned.state_dict())
    assert set(base.state_dict()) == set(before)
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())
