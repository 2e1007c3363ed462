"""The in-process character tokenizer: fixed ids, round trips, BOS variant, save/load without pickle."""

import json
import string

from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hellora.data.tiny_tokenizer import build_tiny_tokenizer


def test_fixed_vocabulary_and_special_ids(tiny_tok):
    assert len(tiny_tok) == 104
    assert (tiny_tok.pad_token_id, tiny_tok.bos_token_id, tiny_tok.eos_token_id, tiny_tok.unk_token_id) == (0, 1, 2, 3)
    assert tiny_tok.convert_tokens_to_ids(["\t", "\n", "\r", " ", "A", "~"]) == [4, 5, 8, 9, 42, 103]
    assert build_tiny_tokenizer().get_vocab() == tiny_tok.get_vocab()


def test_one_token_per_character(tiny_tok):
    assert len(tiny_tok.encode("12+7=")) == 5
    assert tiny_tok.convert_ids_to_tokens(tiny_tok.encode("a b\n")) == ["a", " ", "b", "\n"]


def test_round_trip_all_printable_ascii(tiny_tok):
    text = string.printable + "  double  spaces , . ? ! 'quotes' \"q\" \n\n end "
    assert tiny_tok.decode(tiny_tok.encode(text)) == text
    assert tiny_tok.unk_token_id not in tiny_tok.encode(text)


def test_round_trip_real_gsm8k_text(datasets_dir, tiny_tok):
    lines = (datasets_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[:200]
    for line in lines:
        rec = json.loads(line)
        for text in (rec["question"], rec["answer"]):
            if text.isascii():
                assert tiny_tok.decode(tiny_tok.encode(text)) == text


def test_non_ascii_becomes_unk(tiny_tok):
    assert tiny_tok.encode("é") == [tiny_tok.unk_token_id]


def test_bos_variant_prepends_bos_and_round_trips_without_specials(tiny_tok_bos):
    ids = tiny_tok_bos.encode("hi")
    assert ids[0] == tiny_tok_bos.bos_token_id and len(ids) == 3
    assert tiny_tok_bos.decode(ids, skip_special_tokens=True) == "hi"
    assert tiny_tok_bos.encode("hi", add_special_tokens=False) == ids[1:]


def test_is_a_transformers_fast_tokenizer(tiny_tok):
    assert isinstance(tiny_tok, PreTrainedTokenizerFast)


def test_save_and_load(tmp_path, tiny_tok_bos):
    tiny_tok_bos.save_pretrained(tmp_path)
    assert all(p.suffix == ".json" for p in tmp_path.iterdir())  # no pickled files
    for loaded in (AutoTokenizer.from_pretrained(tmp_path), PreTrainedTokenizerFast.from_pretrained(tmp_path)):
        text = "Tom has 3 pens.\nNow?"
        assert loaded.encode(text) == tiny_tok_bos.encode(text)
        assert loaded.get_vocab() == tiny_tok_bos.get_vocab()
        assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (0, 1, 2)
        assert loaded.decode(loaded.encode(text), skip_special_tokens=True) == text
