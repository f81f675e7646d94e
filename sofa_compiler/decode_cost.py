"""When bifurcated attention pays: a decode step's cycles and DRAM bytes, predicted without simulating.

The estimate replays the decode kernel's schedule (`passes.lower_to_isa.decode`)
tile by tile with the simulator's own cost rules (`sim.costs.CostModel`,
`sim.semantics.attention_step_work`; docs/cost-model.md, "Decode"):

* each KV head loads its queries between barriers, then streams its tiles;
* a tile's K and V loads hold the one load queue for ``setup + bytes / bandwidth``
  each, and its data is ready a DRAM latency after the V load ends;
* its `sufa.dense` step waits for the data and for the previous step, holds the
  SU-FA unit for its occupancy and frees its buffer set a pipeline latency later;
* a load waits for a free buffer set (`DecodePlan.sets` of them);
* the head ends with `sufa.norm` and the store of O.

`choose_lowering` picks the lowering with fewer predicted cycles (ties: fewer
DRAM bytes). The functional machine never runs: an estimate costs microseconds
per tile.

`step_floor` bounds every lowering from below by the same rules: the SU-FA
array's cycles for the step's MACs alone and the DRAM read channel's cycles for
the bytes a step must load. Splitting the KV sequence across lane groups
(flash-decoding) cannot go under it: it leaves the MACs and bytes as they are
and adds its merges (docs/cost-model.md, "Decode").
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from dialects.numerics import DATAPATH
from passes.lower_to_isa.decode import DECODE_TILE, DecodeKernel, DecodeLowering, DecodeStep, Stream
from sofa_compiler.decode import target_of
from sofa_compiler.sim.config import HardwareConfig, load_config
from sofa_compiler.sim.costs import CostModel, ceil_div_real
from sofa_compiler.sim.events import Work
from sofa_compiler.sim.semantics import attention_step_work


@dataclass(frozen=True)
class DecodeEstimate:
    """Predicted cost of one decode step under one lowering."""

    lowering: DecodeLowering
    cycles: int
    dram_bytes: int


@dataclass
class _Pipeline:
    """The load queue and the SU-FA unit of one KV head, with the buffer sets between them."""

    model: CostModel
    sets: int
    load_free: int = 0
    sufa_free: int = 0
    freed: deque[int] | None = None
    dram_bytes: int = 0

    def __post_init__(self) -> None:
        self.freed = deque([0] * self.sets)

    def load(self, nbytes: int, start: int) -> int:
        """A DMA load of `nbytes` on the queue; returns when its data is in SRAM."""
        begin = max(self.load_free, start)
        self.load_free = begin + self.model.dma_setup + ceil_div_real(nbytes, self.model.dram_bytes_per_cycle)
        self.dram_bytes += nbytes
        return self.load_free + self.model.dram_latency

    def tile(self, keys: int, lanes: int, depth: int, vdepth: int) -> None:
        assert self.freed is not None
        element = DATAPATH.nbytes
        set_free = self.freed.popleft()
        self.load(keys * depth * element, set_free)
        ready = self.load(keys * vdepth * element, 0)
        work = attention_step_work("sufa.step", lanes, keys, lanes * keys, depth, vdepth, keys)
        cost = self.model.sufa(work)
        start = max(self.sufa_free, ready)
        self.sufa_free = start + max(1, cost.occupancy)
        self.freed.append(self.sufa_free + cost.latency)


def _stream_tiles(stream: Stream, tile: int) -> list[int]:
    whole, tail = divmod(stream.length, tile)
    return [tile] * whole + ([tail] if tail else [])


def estimate(
    step: DecodeStep, lowering: DecodeLowering, config: HardwareConfig | None = None, tile: int = DECODE_TILE
) -> DecodeEstimate:
    """Predicted cycles and DRAM bytes of `step` under `lowering` on `config` (default: the paper's design)."""
    config = config or load_config(None)
    model = CostModel.of(config)
    kernel = DecodeKernel(step=step, target=target_of(config), lowering=lowering, tile=tile)
    element, d, dv = DATAPATH.nbytes, step.depth, step.value_depth
    now, dram = 0, 0
    for _ in range(step.kv_heads):
        for samples in kernel.passes():
            lanes = len(samples) * step.group
            pipe = _Pipeline(model, kernel.plan.sets)
            ready = pipe.load(lanes * d * element, now)  # the queries, between barriers
            pipe.load_free = pipe.sufa_free = ready
            pipe.freed = deque([ready] * kernel.plan.sets)
            for stream in kernel.streams(samples):
                for keys in _stream_tiles(stream, tile):
                    pipe.tile(keys, stream.lanes, d, dv)
            norm = model.sufa(Work(divs=lanes * dv))
            # The SU-FA unit is in order: the norm issues after the last step's occupancy, not its latency.
            normalised = pipe.sufa_free + norm.occupancy + norm.latency
            store = model.dma_setup + ceil_div_real(lanes * dv * element, model.dram_bytes_per_cycle)
            now = normalised + store + model.dram_latency
            dram += pipe.dram_bytes + lanes * dv * element
    return DecodeEstimate(lowering, now, dram)


@dataclass(frozen=True)
class DecodeFloor:
    """Cycles no lowering of a step can beat on a config: its MAC and its DRAM-read bounds."""

    mac_cycles: int
    """The step's MACs (every query against each of its keys, Q·K and P·V) over the SU-FA array's PEs."""
    read_cycles: int
    """Q and the K/V rows a step must read (the prefix once, every suffix row once) over the DRAM bandwidth."""

    @property
    def cycles(self) -> int:
        return max(self.mac_cycles, self.read_cycles)


def step_floor(step: DecodeStep, config: HardwareConfig | None = None) -> DecodeFloor:
    """The floor of `step` on `config`, by the rules `estimate` and the simulator charge.

    A SU-FA instruction occupies its unit for at least ``macs / PEs`` cycles
    (`CostModel.sufa`), whatever lanes it uses, and the loads share one DRAM
    read channel at ``bytes / bandwidth``; per-tile merges, DMA setup and
    latencies only add to these.
    """
    model = CostModel.of(config or load_config(None))
    d, dv = step.depth, step.value_depth
    macs = step.kv_heads * step.group * sum(step.cache_lengths) * (d + dv)
    reads = step.io_lower_bound() - step.batch * step.q_heads * dv * DATAPATH.nbytes
    return DecodeFloor(-(-macs // model.sufa_pes), ceil_div_real(reads, model.dram_bytes_per_cycle))


def choose_lowering(step: DecodeStep, config: HardwareConfig | None = None, tile: int = DECODE_TILE) -> DecodeEstimate:
    """The lowering with the fewest predicted cycles (ties: the fewest DRAM bytes), with its estimate."""
    estimates = [estimate(step, lowering, config, tile) for lowering in DecodeLowering]
    return min(estimates, key=lambda e: (e.cycles, e.dram_bytes))
