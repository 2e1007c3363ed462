"""The data summary before training: empty prompts, characters outside the tokenizer, truncated examples, counted;
and a profile of fewer than ~1,000 tokens gives a warning."""

import logging

from hellora.data import build_tiny_tokenizer, encode_pairs
from hellora.data.summary import format_summary, summarize_pairs
from hellora.profiling.profile import ExpertProfile


def _summary(pairs, max_length=24, max_prompt_length=12):
    tokenizer = build_tiny_tokenizer()
    features = encode_pairs(tokenizer, pairs, max_length, max_prompt_length)
    return summarize_pairs(tokenizer, pairs, features, max_length, max_prompt_length)


def test_each_problem_is_counted():
    pairs = [("sort: cab", "abc"),                 # clean
             ("", "abc"),                          # empty prompt
             ("   ", "x"),                         # blank prompt
             ("price in €", "ten"),                # a character the tokenizer cannot spell
             ("a" * 30, "b"),                      # prompt longer than max_prompt_length 12
             ("q", "z" * 40)]                      # answer longer than what max_length 24 leaves
    s = _summary(pairs)
    assert (s["examples"], s["empty_prompts"], s["empty_answers"]) == (6, 2, 0)
    assert (s["with_unknown"], s["unknown_tokens"]) == (1, 1)
    assert (s["truncated_prompts"], s["truncated_answers"]) == (1, 1)
    line, problems = format_summary(s)
    assert problems and line.startswith("data: 6 examples; 2 empty prompts (33.3%)")
    assert "1 with characters outside the tokenizer" in line and "prompts truncated to max_prompt_length 12" in line


def test_exact_fits_are_not_truncated():
    # prompt of exactly max_prompt_length, answer + EOS exactly filling max_length
    s = _summary([("a" * 12, "b" * 11)], max_length=24, max_prompt_length=12)
    assert s["truncated_prompts"] == 0 and s["truncated_answers"] == 0
    assert format_summary(s) == ("data: 1 examples; no empty, unknown or truncated examples", False)
    s = _summary([("a" * 12, "b" * 12)], max_length=24, max_prompt_length=12)
    assert s["truncated_answers"] == 1


def test_a_small_profile_warns_when_selecting(caplog):
    small = ExpertProfile(layers=[0], counts=[[10, 9, 0, 0]], mass=[], tokens=[19], num_experts=4, top_k=1)
    with caplog.at_level(logging.WARNING):
        small.select("layer", 1)
    assert "covers only 19 tokens per layer" in caplog.text
    caplog.clear()
    large = ExpertProfile(layers=[0], counts=[[1000, 900, 0, 0]], mass=[], tokens=[1900], num_experts=4, top_k=1)
    with caplog.at_level(logging.WARNING):
        large.select("layer", 1)
    assert "covers only" not in caplog.text
