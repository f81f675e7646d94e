"""Sparse decode (issue 18): the predictor's cache of 4-bit K codes, DLZS + SADS selection, fetched rows only."""

import numpy as np
import pytest

from dialects.numerics import decode_key_codes, encode_key_codes, key_code_row_bytes, lz_decode, wk_to_lz
from passes.lower_to_isa.decode import DecodeError, DecodeLowering, DecodeStep
from passes.lower_to_isa.decode_sparse import SparseDecode, sparse_decode_program
from sofa_compiler.decode import run_decode, target_of
from sofa_compiler.sim.config import load_config
from tests.sim.test_decode import caches


def test_key_codes_are_w_k_codes_with_a_row_exponent():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((3, 5, 33)).astype(np.float16)
    coded = encode_key_codes(k)
    assert coded.shape == (3, 5, key_code_row_bytes(33)) == (3, 5, 18)
    khat = decode_key_codes(coded.reshape(-1, 18), 33)
    for row, predicted in zip(k.reshape(-1, 33), khat, strict=True):
        codes, base = wk_to_lz(row.astype(np.float64)[None])
        np.testing.assert_array_equal(lz_decode(codes, base)[0].astype(np.float16), predicted)


def test_key_codes_of_zero_and_non_finite_rows():
    k = np.array([[0.0, 0.0], [np.inf, -1.0], [np.nan, 2.0]])
    khat = decode_key_codes(encode_key_codes(k), 2)
    np.testing.assert_array_equal(khat, [[0, 0], [2.0**0, -1.0], [2.0, 2.0]])


STEPS = [
    DecodeStep(1, 1, 1, 128, (1000,), 0),
    DecodeStep(2, 4, 2, 64, (300, 77), 0),
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"B{s.batch}-g{s.group}")
def test_keep_one_equals_dense_decode_and_reads_the_codes_beside(step):
    q, k, v = caches(step)
    dense = run_decode(step, DecodeLowering.STANDARD, q, k, v)
    sparse = run_decode(step, SparseDecode(1.0), q, k, v)
    np.testing.assert_array_equal(sparse.output, dense.output)
    codes = step.kv_heads * sum(step.cache_lengths) * key_code_row_bytes(step.depth)
    assert sparse.report.dram_read_bytes == dense.report.dram_read_bytes + codes


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"B{s.batch}-g{s.group}")
def test_fewer_bytes_at_lower_keep(step):
    q, k, v = caches(step)
    read = [run_decode(step, SparseDecode(keep), q, k, v).report.dram_read_bytes for keep in (1.0, 0.5, 0.25)]
    assert read[0] > read[1] > read[2]
    if step.group == 1:  # one lane: a tile's union is its own selection, a quarter of the rows
        dense = run_decode(step, DecodeLowering.STANDARD, q, k, v).report.dram_read_bytes
        assert read[2] / dense < 0.4


def test_sparse_decode_rejects_a_shared_prefix_and_bad_keep():
    target = target_of(load_config(None))
    with pytest.raises(DecodeError, match="no shared prefix"):
        sparse_decode_program(DecodeStep(2, 1, 1, 64, (100, 100), 50), target, 0.25)
    with pytest.raises(DecodeError, match="keep must be in"):
        sparse_decode_program(DecodeStep(1, 1, 1, 64, (100,), 0), target, 0.0)
