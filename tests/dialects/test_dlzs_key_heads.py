"""`numerics.dlzs_key_heads`: DLZS phase 1 split into KV heads, as `sofa.dlzs_key` returns it."""

from __future__ import annotations

import numpy as np
import pytest

from dialects import numerics


def test_heads_are_column_blocks_of_the_whole_khat() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 10, 16))
    codes, base = numerics.wk_to_lz(rng.standard_normal((16, 3 * 4)))
    whole = numerics.dlzs_key(x, codes, base)
    split = numerics.dlzs_key_heads(x, codes, base, 3)
    assert split.shape == (1, 3, 10, 4)
    assert split.dtype == np.float16
    for head in range(3):
        assert np.array_equal(split[0, head], whole[0, :, head * 4 : (head + 1) * 4])


def test_columns_that_do_not_split_are_an_error() -> None:
    codes, base = numerics.wk_to_lz(np.ones((4, 6)))
    with pytest.raises(ValueError, match="do not split into 4 heads"):
        numerics.dlzs_key_heads(np.ones((1, 2, 4)), codes, base, 4)
