"""Prompt masking, BOS/EOS handling and truncation in `encode_example` / `encode_prompt`."""

import pytest

from hellora.data.tasks import get_task
from hellora.data.tiny_tokenizer import build_tiny_tokenizer
from hellora.data.tokenize import IGNORE_INDEX, encode_example, encode_pairs, encode_prompt, tokenizer_adds_bos
from hellora.utils.errors import HelloraError

EOS, BOS = 2, 1  # fixed ids of the tiny tokenizer


def _n_masked(labels):
    n = 0
    while n < len(labels) and labels[n] == IGNORE_INDEX:
        n += 1
    return n


def test_prompt_labels_are_masked_exactly_and_target_decodes_back(tiny_tok):
    prompt, target = "12+7=", "19"
    enc = encode_example(tiny_tok, prompt, target)
    assert enc["input_ids"] == tiny_tok.encode(prompt) + tiny_tok.encode(target) + [EOS]
    assert enc["labels"] == [IGNORE_INDEX] * 5 + enc["input_ids"][5:]
    assert enc["attention_mask"] == [1] * 8
    assert tiny_tok.decode(enc["labels"][5:]) == "19</s>"


def test_gsm8k_example_masks_the_whole_prompt(datasets_dir, tiny_tok):
    task = get_task("gsm8k")
    prompt, target = task.format(task.load(datasets_dir / "gsm8k" / "train.jsonl", limit=1)[0])
    enc = encode_example(tiny_tok, prompt, target, max_length=4096, max_prompt_length=1024)
    n = _n_masked(enc["labels"])
    assert n == len(prompt)  # one token per character
    assert tiny_tok.decode(enc["input_ids"][:n]) == prompt
    assert tiny_tok.decode(enc["labels"][n:]) == target + "</s>"
    assert IGNORE_INDEX not in enc["labels"][n:]


def test_bos_is_added_when_the_tokenizer_uses_one(tiny_tok_bos):
    assert tokenizer_adds_bos(tiny_tok_bos)
    enc = encode_example(tiny_tok_bos, "ab", "c")
    raw = tiny_tok_bos.convert_tokens_to_ids(["a", "b", "c"])
    assert enc["input_ids"] == [BOS, *raw, EOS]
    assert enc["labels"][:3] == [IGNORE_INDEX] * 3  # BOS is part of the prompt
    assert enc["labels"][3:] == enc["input_ids"][3:]


def test_no_bos_when_the_tokenizer_does_not_add_one(tiny_tok):
    assert not tokenizer_adds_bos(tiny_tok)
    assert encode_example(tiny_tok, "ab", "c")["input_ids"][0] != BOS


def test_add_bos_can_be_forced_either_way(tiny_tok, tiny_tok_bos):
    assert encode_example(tiny_tok, "ab", "c", add_bos=True)["input_ids"][0] == BOS
    assert encode_example(tiny_tok_bos, "ab", "c", add_bos=False)["input_ids"][0] != BOS


def test_tokenizer_without_any_bos_token():
    tok = build_tiny_tokenizer()
    tok.bos_token = None
    assert tok.bos_token_id is None and not tokenizer_adds_bos(tok)
    enc = encode_example(tok, "ab", "c")
    assert len(enc["input_ids"]) == 4 and enc["labels"][:2] == [IGNORE_INDEX] * 2
    with pytest.raises(HelloraError, match=r"add_bos=True but the tokenizer has no bos_token"):
        encode_example(tok, "ab", "c", add_bos=True)


def test_tokenizer_without_eos_is_an_error():
    tok = build_tiny_tokenizer()
    tok.eos_token = None
    with pytest.raises(HelloraError, match=r"the tokenizer has no eos_token"):
        encode_example(tok, "ab", "c")


def test_long_prompt_keeps_its_end(tiny_tok):
    prompt = "".join(chr(ord("a") + i % 26) for i in range(300)) + "?"
    enc = encode_example(tiny_tok, prompt, "yes", max_length=512, max_prompt_length=256)
    n = _n_masked(enc["labels"])
    assert n == 256
    assert tiny_tok.decode(enc["input_ids"][:n]) == prompt[-256:]
    assert tiny_tok.decode(enc["input_ids"][n:]) == "yes</s>"


def test_long_prompt_keeps_bos_first_then_the_end(tiny_tok_bos):
    prompt = "x" * 100 + "END"
    enc = encode_example(tiny_tok_bos, prompt, "t", max_length=64, max_prompt_length=10)
    assert enc["input_ids"][0] == BOS
    assert _n_masked(enc["labels"]) == 10
    assert tiny_tok_bos.decode(enc["input_ids"][1:10]) == prompt[-9:]


def test_whole_sequence_is_cut_to_max_length_and_loses_eos(tiny_tok):
    enc = encode_example(tiny_tok, "p" * 200, "t" * 400, max_length=512, max_prompt_length=256)
    assert len(enc["input_ids"]) == len(enc["labels"]) == len(enc["attention_mask"]) == 512
    assert _n_masked(enc["labels"]) == 200
    assert EOS not in enc["input_ids"]  # a cut answer must not teach the model to stop there


def test_exact_fit_keeps_eos(tiny_tok):
    enc = encode_example(tiny_tok, "p" * 6, "t" * 3, max_length=10, max_prompt_length=6)
    assert len(enc["input_ids"]) == 10 and enc["input_ids"][-1] == EOS


def test_encode_prompt_matches_the_training_prefix(tiny_tok_bos):
    prompt = "q" * 40
    ids = encode_prompt(tiny_tok_bos, prompt, max_prompt_length=16)
    enc = encode_example(tiny_tok_bos, prompt, "answer", max_length=64, max_prompt_length=16)
    assert ids == enc["input_ids"][: len(ids)] and len(ids) == 16 == _n_masked(enc["labels"])


def test_encode_pairs_equals_encode_example(tiny_tok_bos):
    pairs = [("1+1=", "2"), ("reverse ab ->", "ba")]
    assert encode_pairs(tiny_tok_bos, pairs, 32, 16) == [encode_example(tiny_tok_bos, p, t, 32, 16) for p, t in pairs]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_length": 256, "max_prompt_length": 256}, r"max_prompt_length \(256\) must be smaller than max_length \(256\)"),
        ({"max_length": 0}, r"max_length must be a positive integer, got 0"),
        ({"max_prompt_length": -1}, r"max_prompt_length must be a positive integer, got -1"),
        ({"max_length": 12.5}, r"max_length must be a positive integer, got 12\.5"),
    ],
)
def test_bad_lengths_are_named(tiny_tok, kwargs, message):
    with pytest.raises(HelloraError, match=message):
        encode_example(tiny_tok, "a", "b", **kwargs)


def test_prompt_budget_must_leave_room_after_bos(tiny_tok_bos):
    with pytest.raises(HelloraError, match=r"max_prompt_length must exceed the 1 BOS token"):
        encode_example(tiny_tok_bos, "a", "b", max_length=8, max_prompt_length=1)


def _small_bpe_tokenizer(texts):
    """A byte-level BPE tokenizer trained in-process, so multi-character tokens can straddle the boundary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<pad>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                   clean_up_tokenization_spaces=False)


def test_boundary_is_exact_with_a_bpe_tokenizer(datasets_dir):
    task = get_task("gsm8k")
    records = task.load(datasets_dir / "gsm8k" / "test.jsonl", limit=300)
    pairs = task.format_records(records)
    tok = _small_bpe_tokenizer([p + t for p, t in pairs])
    assert tok.bos_token_id is None
    for prompt, target in pairs[:50]:
        enc = encode_example(tok, prompt, target, max_length=4096, max_prompt_length=2048)
        n = _n_masked(enc["labels"])
        assert tok.decode(enc["input_ids"][:n]) == prompt
        assert enc["labels"][n:] == enc["input_ids"][n:]
        assert tok.decode(enc["labels"][n:]) == target + "</s>"
        assert n < len(prompt)  # real multi-character tokens, not one per character
