"""Synthetic skills: answers recomputed independently, distinct surface forms, determinism, disjoint splits."""

import re
from collections import Counter

import pytest

from hellora.data.skills import SKILLS, exact_match, generate_skill_examples, mixture, split_of
from hellora.utils.errors import HelloraError

# An independent solver: each skill's prompt shape, and how to compute its answer from the parsed pieces.
SOLVERS = {
    "add": [(r"(\d+)\+(\d+)=", lambda a, b: str(int(a) + int(b)))],
    "sub": [(r"(\d+)-(\d+)=", lambda a, b: str(int(a) - int(b)))],
    "mul": [(r"(\d+)\*(\d+)=", lambda a, b: str(int(a) * int(b)))],
    "reverse": [(r"reverse ([a-z]+) ->", lambda w: "".join(reversed(w)))],
    "sort": [(r"sort ((?:\d )*\d) ->", lambda s: " ".join(sorted(s.split(" "), key=int)))],
    "count": [(r"count ([a-z]) in ([a-z]+)\?", lambda c, s: str(sum(ch == c for ch in s)))],
    "upper": [(r"upper ([a-z]+) ->", lambda w: "".join(chr(ord(ch) - 32) for ch in w))],
    "copy": [(r"copy ([a-z0-9]+) ->", lambda s: s)],
    "max": [(r"max\((\d+(?:,\d+)*)\)=", lambda s: str(max(int(x) for x in s.split(","))))],
    "shift": [(r"shift ([a-z]+) ->", lambda w: "".join(chr((ord(ch) - 97 + 1) % 26 + 97) for ch in w))],
    "word": [
        (r"[A-Z][a-z]* had (\d+) [a-z]+, got (\d+), lost (\d+)\. Now\?", lambda a, b, c: str(int(a) + int(b) - int(c))),
        (r"[A-Z][a-z]* has (\d+) bags of (\d+) and (\d+) more\. Total\?", lambda a, b, c: str(int(a) * int(b) + int(c))),
        (r"[A-Z][a-z]* buys (\d+) bags of (\d+), eats (\d+)\. Left\?", lambda a, b, c: str(int(a) * int(b) - int(c))),
    ],
}


def _matching_skills(prompt):
    return [name for name, forms in SOLVERS.items() if any(re.fullmatch(p, prompt) for p, _ in forms)]


def _solve(skill, prompt):
    for pattern, f in SOLVERS[skill]:
        m = re.fullmatch(pattern, prompt)
        if m:
            return f(*m.groups())
    raise AssertionError(f"{skill} prompt has an unexpected shape: {prompt!r}")


def test_solver_covers_every_skill():
    assert set(SOLVERS) == set(SKILLS)


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_answers_are_correct_and_forms_distinctive(skill):
    for split in ("train", "test"):
        for ex in generate_skill_examples(skill, 150, seed=3, split=split):
            assert ex["skill"] == skill
            assert _matching_skills(ex["prompt"]) == [skill]  # shape identifies the skill, and only this one
            assert ex["answer"] == _solve(skill, ex["prompt"])


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_sizes_fit_a_char_level_tokenizer(skill, tiny_tok):
    for ex in generate_skill_examples(skill, 300, seed=0):
        assert len(ex["prompt"]) < 40 and 0 < len(ex["answer"]) < 12
        assert tiny_tok.unk_token_id not in tiny_tok.encode(ex["prompt"] + ex["answer"])


def test_word_problems_use_all_three_forms():
    forms = Counter(
        next(i for i, (p, _) in enumerate(SOLVERS["word"]) if re.fullmatch(p, ex["prompt"]))
        for ex in generate_skill_examples("word", 300, seed=0)
    )
    assert set(forms) == {0, 1, 2}


def test_deterministic_for_a_seed_and_different_across_seeds():
    assert generate_skill_examples("add", 50, seed=5) == generate_skill_examples("add", 50, seed=5)
    assert generate_skill_examples("add", 50, seed=5) != generate_skill_examples("add", 50, seed=6)


@pytest.mark.parametrize("skill", sorted(SKILLS))
def test_train_and_test_splits_are_disjoint(skill):
    train = {ex["prompt"] for seed in (0, 1) for ex in generate_skill_examples(skill, 200, seed, split="train")}
    test = {ex["prompt"] for seed in (0, 1) for ex in generate_skill_examples(skill, 100, seed, split="test")}
    assert train and test and not train & test
    assert {split_of(p) for p in train} == {"train"} and {split_of(p) for p in test} == {"test"}


def test_split_of_is_roughly_the_test_fraction():
    prompts = [f"{a}+{b}=" for a in range(100) for b in range(100)]
    share = sum(split_of(p) == "test" for p in prompts) / len(prompts)
    assert 0.17 < share < 0.23
    assert sum(split_of(p, 0.5) == "test" for p in prompts) / len(prompts) > 0.45


def test_prompts_are_unique_within_a_call():
    exs = generate_skill_examples("mul", 500, seed=0)
    assert len({ex["prompt"] for ex in exs}) == 500


def test_mixture_counts_order_and_determinism():
    mix = mixture(["add", "reverse", "word"], n_per_skill=40, seed=1)
    assert Counter(ex["skill"] for ex in mix) == {"add": 40, "reverse": 40, "word": 40}
    assert [ex["skill"] for ex in mix[:40]] != ["add"] * 40  # shuffled, not blocked by skill
    assert mix == mixture(["add", "reverse", "word"], n_per_skill=40, seed=1)
    assert len(mixture(n_per_skill=5)) == 5 * len(SKILLS)


def test_exact_match():
    assert exact_match(" 19\n", "19")
    assert not exact_match("190", "19")
    assert not exact_match("1 9", "19")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: generate_skill_examples("divide", 5, 0), r"unknown skill 'divide'; known skills: add, sub, mul"),
        (lambda: generate_skill_examples("add", 0, 0), r"n must be a positive integer, got 0"),
        (lambda: generate_skill_examples("add", 5, 0, split="dev"), r"split must be 'train' or 'test', got 'dev'"),
        (lambda: generate_skill_examples("add", 5, 0, test_fraction=1.0), r"test_fraction must be a number in \(0, 1\)"),
        (lambda: generate_skill_examples("mul", 1000, 0, split="test"), r"skill 'mul' yielded only \d+ distinct test prompts"),
        (lambda: mixture(["add", "add"], 5), r"skills lists a skill twice"),
    ],
)
def test_errors_are_named(call, message):
    with pytest.raises(HelloraError, match=message):
        call()
