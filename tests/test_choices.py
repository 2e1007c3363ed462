"""The typed choices (`hellora.choices`): members are their strings, parse names the field, the hot-k default."""

import pytest

from hellora.utils.errors import HelloraError
from hellora.choices import CHOICES, Choice, Method, Strategy, resolve_hot_k


def test_members_equal_their_strings_and_print_as_them():
    assert Method.LORA == "lora" and str(Method.LORA) == "lora" and f"{Method.LORA}" == "lora"
    assert repr(Strategy.COLD_ENTROPY) == "'cold-entropy'"
    assert Method.parse("fft", "adapter.method") is Method.FFT and Method.parse(Method.FFT, "x") is Method.FFT
    assert all(issubclass(cls, Choice) and name == cls.__name__ for name, cls in CHOICES.items())


def test_parse_names_the_field_and_the_choices():
    with pytest.raises(HelloraError, match="selection.strategy: unknown value 'hot'; choose one of layer, model"):
        Strategy.parse("hot", "selection.strategy")


def test_resolve_hot_k_defaults_to_the_router_top_k_and_checks_k():
    assert resolve_hot_k(None, 8) == 8 and resolve_hot_k(3, 8) == 3
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(HelloraError, match="k: hot experts per layer"):
            resolve_hot_k(bad, 8)
