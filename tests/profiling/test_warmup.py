"""The warm-up's batch shape on samples smaller than the training batch."""

import pytest

from hellora.profiling.warmup import warmup_batch_shape


@pytest.mark.parametrize("requested, examples, micro, world, expected", [
    (128, 1000, 16, 1, (128, 16)),   # the sample is large enough: the training shape
    (128, 100, 16, 1, (96, 16)),     # a smaller global batch, still one step
    (128, 26, 32, 1, (26, 26)),      # a sample smaller than one micro-batch: the micro-batch shrinks
    (128, 26, 32, 2, (26, 13)),      # ... across processes
    (128, 1, 8, 2, (2, 1)),          # too small for every process: one step is impossible, the loop says so
])
def test_warmup_batch_shape(requested, examples, micro, world, expected):
    assert warmup_batch_shape(requested, examples, micro, world) == expected
