"""Decode kernels (issue 18): a step's queries in the lanes, standard and bifurcated shared-prefix attention."""

import numpy as np
import pytest

from passes.lower_to_isa.decode import (
    DecodeError,
    DecodeKernel,
    DecodeLowering,
    DecodeStep,
    decode_program,
    plan_decode,
    stage_decode_inputs,
    unstage_decode_output,
)
from passes.lower_to_isa.decode_sparse import SparseDecode, sparse_decode_program, stage_sparse_decode_inputs
from sofa_compiler.decode import run_decode, target_of
from sofa_compiler.decode_cost import choose_lowering, estimate
from sofa_compiler.interpreters.sofa_isa import run_ir
from sofa_compiler.isa.asm import assemble
from sofa_compiler.sim.config import load_config
from sofa_compiler.sim.functional import Machine
from sofa_compiler.sim.traps import Trap
from tests.fp16_tolerance import assert_fp16_close, fp16

STANDARD, BIFURCATED = DecodeLowering.STANDARD, DecodeLowering.BIFURCATED


def caches(step: DecodeStep, seed: int = 0):
    """Q and per-sample caches whose first `prefix` rows are one shared cache."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((step.batch, step.q_heads, 1, step.depth)).astype(np.float32)
    shared_k = rng.standard_normal((step.kv_heads, step.prefix, step.depth))
    shared_v = rng.standard_normal((step.kv_heads, step.prefix, step.value_depth))
    k, v = [], []
    for length in step.cache_lengths:
        rows = length - step.prefix
        k.append(np.concatenate([shared_k, rng.standard_normal((step.kv_heads, rows, step.depth))], axis=1))
        v.append(np.concatenate([shared_v, rng.standard_normal((step.kv_heads, rows, step.value_depth))], axis=1))
    return q, k, v


def reference(step: DecodeStep, q, k, v) -> np.ndarray:
    """Exact attention on the fp16-stored inputs, ``[B, Hq, 1, dv]``."""
    out = np.zeros((step.batch, step.q_heads, 1, step.value_depth))
    for b, length in enumerate(step.cache_lengths):
        for h in range(step.q_heads):
            keys, values = fp16(k[b][h // step.group, :length]), fp16(v[b][h // step.group, :length])
            scores = fp16(q[b, h, 0]) @ keys.T * step.logit_scale
            weights = np.exp(scores - scores.max())
            out[b, h, 0] = weights @ values / weights.sum()
    return out


STEPS = [
    # batch, q heads, kv heads, depth, cache lengths, prefix
    DecodeStep(3, 4, 2, 64, (155, 220, 151), 150),  # GQA, partial tiles everywhere
    DecodeStep(4, 2, 2, 32, (128 + 64, 128 + 1, 128 + 130, 128 + 64), 128),  # the prefix in whole tiles
    DecodeStep(2, 8, 1, 16, (70, 300), 0),  # no shared prefix: batched decode over separate caches
    DecodeStep(5, 1, 1, 64, (40, 40, 40, 40, 40), 40),  # only the prefix: every suffix is empty
]


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"B{s.batch}-g{s.group}-P{s.prefix}")
def test_bifurcated_equals_standard_and_exact_attention(step):
    q, k, v = caches(step)
    standard = run_decode(step, STANDARD, q, k, v)
    bifurcated = run_decode(step, BIFURCATED, q, k, v)
    # Each lane merges the same tiles in the same order: the same bits.
    np.testing.assert_array_equal(standard.output, bifurcated.output)
    assert_fp16_close(bifurcated.output, reference(step, q, k, v), np.concatenate([x.ravel() for x in v]))


@pytest.mark.parametrize("step", STEPS, ids=lambda s: f"B{s.batch}-g{s.group}-P{s.prefix}")
def test_dram_traffic_is_the_io_lower_bound_when_bifurcated(step):
    q, k, v = caches(step)
    standard = run_decode(step, STANDARD, q, k, v).report
    bifurcated = run_decode(step, BIFURCATED, q, k, v).report
    assert bifurcated.dram_read_bytes + bifurcated.dram_write_bytes == step.io_lower_bound()
    # The standard lowering reads the prefix once per sample.
    prefix_bytes = step.kv_heads * step.prefix * (step.depth + step.value_depth) * 2
    assert standard.dram_read_bytes - bifurcated.dram_read_bytes == (step.batch - 1) * prefix_bytes
    if step.prefix and step.batch > 1:
        assert bifurcated.total_cycles < standard.total_cycles
        assert bifurcated.total_energy_pj < standard.total_energy_pj


def test_cycles_grow_with_the_cache():
    short = DecodeStep(2, 2, 1, 64, (300, 310), 256)
    long = DecodeStep(2, 2, 1, 64, (600, 610), 556)
    for lowering in DecodeLowering:
        cycles = [run_decode(s, lowering, *caches(s)).report.total_cycles for s in (short, long)]
        assert cycles[0] < cycles[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((2, 3, 2, 64, (10, 10), 0), "do not share"),
        ((2, 2, 2, 64, (10,), 0), "cache lengths for a batch"),
        ((2, 2, 2, 64, (10, 4), 5), "at least one key and the shared prefix"),
        ((2, 2, 2, 64, (0, 4), 0), "at least one key"),
        ((1, 1, 1, 4096, (4,), 0), "12-bit depth fields"),
    ],
)
def test_bad_steps_are_clear_errors(args, message):
    with pytest.raises(DecodeError, match=message):
        DecodeStep(*args)


@pytest.mark.parametrize("lowering", DecodeLowering)
def test_more_queries_than_lanes_run_in_passes(lowering):
    # An 8-lane target: 5 samples x 2 query heads = 10 queries per KV head run as passes of 4 and 1 samples.
    config = load_config(None).with_values({"target.lanes": 8})
    step = DecodeStep(5, 4, 2, 32, (90, 100, 71, 64, 65), 60)
    q, k, v = caches(step)
    run = run_decode(step, lowering, q, k, v, config)
    assert_fp16_close(run.output, reference(step, q, k, v), np.concatenate([x.ravel() for x in v]))
    prefix_reads = 2 if lowering is BIFURCATED else step.batch  # once per pass, or once per sample
    prefix_bytes = step.kv_heads * step.prefix * (step.depth + step.value_depth) * 2
    assert (
        run.report.dram_read_bytes + run.report.dram_write_bytes
        == step.io_lower_bound() + (prefix_reads - 1) * prefix_bytes
    )
    assert abs(estimate(step, lowering, config).cycles / run.report.total_cycles - 1) < 0.05


def test_a_bad_tile_is_a_clear_error():
    step, target = DecodeStep(1, 1, 1, 64, (100,), 0), target_of(load_config(None))
    for tile in (0, 1 << 16):
        with pytest.raises(DecodeError, match="a K/V window holds 1 to 65535 keys"):
            plan_decode(step, target, tile)
    with pytest.raises(DecodeError, match="a K/V window holds"):
        sparse_decode_program(step, target, 0.5, 0)


def test_a_group_past_the_lanes_is_a_clear_error():
    step = DecodeStep(1, 256, 1, 64, (100,), 0)
    with pytest.raises(DecodeError, match="256 query heads per KV head exceed the target's 128 lanes"):
        plan_decode(step, target_of(load_config(None)))


def test_sufa_dense_updates_only_its_lanes_and_traps_outside_them():
    # V = two rows of ones at DRAM 64: the attended lanes give 1, the others keep their empty state (0).
    ones = np.ones(4, np.float16).tobytes().hex()
    head = f".data 64 {ones}\ndma.load dst=token[r0+128], src=dram[r0+64], rows=1, row_bytes=8, src_stride=8\n"
    head += "barrier\nsufa.init lanes=4, vdepth=2\n"
    step = "sufa.dense q=token[r0+0], k=token[r0+64], v=token[r0+128], lane0={}, lanes=2, keys=2, depth=2, vdepth=2, "
    step += "scale=1.0, dtype=f16\n"
    tail = "sufa.norm out=temp[r0+0], lanes=4, vdepth=2\nbarrier\ndma.store src=temp[r0+0], dst=dram[r0+0], rows=1, "
    tail += "row_bytes=16, dst_stride=16\nbarrier\nhalt\n"
    machine = Machine({"token": 1024, "weight": 1024, "temp": 1024}, 4096)
    machine.run(assemble(head + step.format(2) + tail, "t.s"), {})
    out = machine.dram[:16].view(np.float16).reshape(4, 2)
    np.testing.assert_array_equal(out, [[0, 0], [0, 0], [1, 1], [1, 1]])
    with pytest.raises(Trap, match="lie outside the accumulators"):
        machine.run(assemble(head + step.format(3) + tail, "t.s"), {})


# --- the cost model -----------------------------------------------------------------------------------------------

CHOICES = [
    DecodeStep(8, 1, 1, 64, (1100,) * 8, 1000),  # a long shared prefix: bifurcated
    DecodeStep(8, 4, 1, 64, (67,) * 8, 64),  # one short prefix tile for 32 lanes, nothing to overlap: standard
    DecodeStep(3, 4, 2, 64, (155, 220, 151), 150),
    DecodeStep(2, 2, 1, 32, (130, 400), 0),  # no prefix: the two lowerings are one program
]


@pytest.mark.parametrize("step", CHOICES, ids=lambda s: f"B{s.batch}-g{s.group}-P{s.prefix}")
def test_cost_model_predicts_the_simulator_and_picks_the_faster_lowering(step):
    q, k, v = caches(step)
    measured = {lowering: run_decode(step, lowering, q, k, v).report for lowering in DecodeLowering}
    for lowering, report in measured.items():
        predicted = estimate(step, lowering)
        assert predicted.dram_bytes == report.dram_read_bytes + report.dram_write_bytes
        assert abs(predicted.cycles / report.total_cycles - 1) < 0.05
    best = min(measured.values(), key=lambda report: report.total_cycles).total_cycles
    assert measured[choose_lowering(step).lowering].total_cycles == best


def test_bifurcation_pays_for_a_long_prefix_and_not_for_one_short_tile():
    assert choose_lowering(CHOICES[0]).lowering is BIFURCATED
    assert choose_lowering(CHOICES[1]).lowering is STANDARD


@pytest.mark.parametrize("kind", [*DecodeLowering, SparseDecode(0.5)], ids=str)
def test_the_ir_interpreter_runs_decode_kernels_as_the_machine_does(kind):
    step = DecodeStep(2, 2, 1, 32, (70, 90), 0 if isinstance(kind, SparseDecode) else 40)
    q, k, v = caches(step)
    target = target_of(load_config(None))
    if isinstance(kind, SparseDecode):
        program, inputs = sparse_decode_program(step, target, kind.keep), stage_sparse_decode_inputs(step, q, k, v)
    else:
        program, inputs = decode_program(step, target, kind), stage_decode_inputs(step, q, k, v)
    from_ir = run_ir(program, inputs).outputs["o"]
    np.testing.assert_array_equal(unstage_decode_output(step, from_ir), run_decode(step, kind, q, k, v).output)


def test_the_bifurcated_tile_order_spreads_every_suffix_tile_among_the_prefix():
    step = DecodeStep(3, 1, 1, 16, (320 + 130, 320 + 200, 320 + 66), prefix=64 * 5)
    kernel = DecodeKernel(step=step, target=target_of(load_config(None)), lowering=BIFURCATED, tile=64)
    order = kernel.tile_order(range(3))
    suffix = [(b, i) for b in range(3) for i in range(-(-step.suffix_lengths[b] // 64))]
    assert [entry for entry in order if entry[0] is None] == [(None, t) for t in range(5)]
    assert [entry for entry in order if entry[0] is not None] == suffix
    assert order[-1] != (None, 4)  # the last prefix tile is followed by suffix tiles, not the other way round
    assert order[0] == (None, 0)
