"""The `sofa` dialect's typed attributes and the shared range checks."""

import math

import pytest
from xdsl.context import Context
from xdsl.dialects.builtin import Builtin, FloatData, IntAttr
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from dialects.sofa import (
    NO_RADIUS,
    TARGET_DEFAULTS,
    TILING_KEYS,
    Sofa,
    SparsityAttr,
    TargetAttr,
    TilingAttr,
    keep_problem,
    radius_problem,
    sphere_radius,
    tile_problem,
)
from sofa_compiler.sim.events import Buffer
from sofa_compiler.sim.functional import DEFAULT_SRAM


def parse(text: str):
    ctx = Context()
    ctx.load_dialect(Builtin)
    ctx.load_dialect(Sofa)
    return Parser(ctx, text).parse_attribute()


def test_target_fields_are_typed_and_default_to_the_paper():
    target = TargetAttr()
    assert isinstance(target.lanes, IntAttr)
    assert target.lanes.data == 128
    assert isinstance(target.clock_mhz, FloatData)
    assert target.clock_mhz.data == 1000.0
    assert target.as_dict() == dict(TARGET_DEFAULTS)
    assert str(target) == "#sofa.target<>"


def test_target_overrides_print_only_non_defaults_and_round_trip():
    target = TargetAttr({"lanes": 64, "clock_mhz": 800.0})
    assert (target.lanes.data, target.temp_sram.data, target.clock_mhz.data) == (64, 28 * 1024, 800.0)
    assert str(target) == "#sofa.target<lanes = 64, clock_mhz = 800.0>"
    assert parse(str(target)) == target


def test_target_float_field_takes_an_integer_literal():
    assert parse("#sofa.target<clock_mhz = 800>") == TargetAttr({"clock_mhz": 800.0})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sram": 3}, r"unknown target parameter\(s\) \['sram'\]"),
        ({"lanes": 0}, "target parameter 'lanes' must be a positive number, got 0"),
        ({"lanes": 64.5}, "target parameter 'lanes' must be an integer, got 64.5"),
    ],
)
def test_bad_target_overrides_are_rejected(overrides, message):
    with pytest.raises(VerifyException, match=message):
        TargetAttr(overrides)


def test_tiling_fields_print_in_order_and_round_trip():
    values = {"lanes": 128, "tile": 32, "kv_tiles": 7, "keep_count": 8, "query_tiles": 2, "padded_q": 256}
    tiling = TilingAttr({**values, "padded_kv": 224})
    assert tiling.kv_tiles.data == 7
    assert tiling.padded_kv.data == 224
    assert tuple(tiling.as_dict()) == TILING_KEYS
    text = "#sofa.tiling<lanes = 128, tile = 32, kv_tiles = 7, keep_count = 8, query_tiles = 2, padded_q = 256, padded_kv = 224>"
    assert str(tiling) == text
    assert parse(text) == tiling


def test_tiling_verifies_its_padding():
    values = {"lanes": 128, "tile": 32, "kv_tiles": 7, "keep_count": 8, "query_tiles": 2, "padded_q": 256}
    with pytest.raises(VerifyException, match="padded_kv must equal kv_tiles"):
        TilingAttr({**values, "padded_kv": 200})


def test_tiling_parse_needs_every_field():
    with pytest.raises(ParseError, match="tiling needs exactly the parameters"):
        parse("#sofa.tiling<lanes = 128, tile = 32>")


def test_no_radius_is_inf_and_the_sparsity_default():
    assert NO_RADIUS == math.inf
    assert SparsityAttr(0.5, 32).radius_value == NO_RADIUS
    assert "radius = inf" in str(SparsityAttr(0.5, 32))
    assert sphere_radius(None) == NO_RADIUS
    assert sphere_radius(4.0) == 4.0


@pytest.mark.parametrize(
    ("check", "good", "bad", "message"),
    [
        (keep_problem, 1.0, 0.0, "must satisfy 0 < keep <= 1, got 0.0"),
        (keep_problem, 0.25, 1.5, "must satisfy 0 < keep <= 1, got 1.5"),
        (tile_problem, 1, 0, "must be at least 1, got 0"),
        (radius_problem, NO_RADIUS, 0.0, "must be positive (or inf), got 0.0"),
    ],
)
def test_range_checks(check, good, bad, message):
    assert check(good) is None
    assert check(bad) == message


def test_simulator_sram_sizes_are_the_target_defaults():
    assert DEFAULT_SRAM == {buffer: TARGET_DEFAULTS[f"{buffer}_sram"] for buffer in Buffer}
