"""torchao is in the `test` extra (small, CPU-installable); these tests need it."""

import pytest

pytest.importorskip("torchao", reason="the quantized-experts tests need torchao (pip install -e '.[test]')")
