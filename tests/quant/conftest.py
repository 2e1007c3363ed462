"""torchao is in the `test` extra (small, CPU-installable); these tests need it."""

import pytest

pytest.importorskip("torchao", reason="the quantized-experts tests need torchao (pip install -e '.[test]')")

from tests.cli.conftest import demo_home  # noqa: F401 (the demo model fixture, for the README commands)
