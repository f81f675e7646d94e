"""The cost model: what one executed instruction costs its unit, in cycles.

`CostModel` reads a config's throughput and latency figures once; `cost(event)`
gives an instruction's occupancy (the issue interval of its unit) and its
latency (pipeline fill/drain, DRAM latency) from the event's work counts.
The scheduler (`timing.py`) turns these into a schedule; docs/simulator.md
describes both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sofa_compiler.sim.events import Event, Unit, Work

if TYPE_CHECKING:  # the config module validates with jsonschema, slow to import; the functional machine needs none
    from sofa_compiler.sim.config import HardwareConfig


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


@dataclass(frozen=True)
class Cost:
    """What one instruction costs its unit."""

    occupancy: int  # cycles before the unit can start its next instruction
    latency: int = 0  # further cycles before results and signals are ready
    reads_dram: int = 0  # of the occupancy, cycles the transfer holds the DRAM read channel (the load queues share it)


@dataclass(frozen=True)
class CostModel:
    """A config's throughput and latency figures, read once for the hot loop."""

    dlzs_pes: int
    lze_units: int
    sads_cores: int
    sads_inputs_per_round: int
    kvgen_pes: int
    sufa_rows: int
    sufa_pes: int
    exp_units: int
    div_units: int
    dram_bytes_per_cycle: float
    dram_latency: int
    ctrl_cycles: int
    dma_setup: int
    dlzs_pipeline: int
    sads_round: int
    sads_pipeline: int
    kvgen_pipeline: int
    sufa_pipeline: int
    exp_latency: int
    div_latency: int
    max_update: int
    sram_port: int

    @staticmethod
    def of(config: HardwareConfig) -> CostModel:
        t, timing = config.target, config.timing
        return CostModel(
            dlzs_pes=int(t["dlzs_rows"]) * int(t["dlzs_cols"]),
            lze_units=int(t["lze_units"]),
            sads_cores=int(t["sads_cores"]),
            sads_inputs_per_round=int(t["sads_inputs_per_round"]),
            kvgen_pes=int(t["kvgen_rows"]) * int(t["kvgen_cols"]),
            sufa_rows=int(t["sufa_rows"]),
            sufa_pes=int(t["sufa_rows"]) * int(t["sufa_cols"]),
            exp_units=int(t["exp_units"]),
            div_units=int(t["div_units"]),
            dram_bytes_per_cycle=config.dram_bytes_per_cycle,
            dram_latency=config.dram_latency_cycles,
            ctrl_cycles=int(timing["ctrl_cycles"]),
            dma_setup=int(timing["dma_setup_cycles"]),
            dlzs_pipeline=int(timing["dlzs_pipeline_cycles"]),
            sads_round=int(timing["sads_round_cycles"]),
            sads_pipeline=int(timing["sads_pipeline_cycles"]),
            kvgen_pipeline=int(timing["kvgen_pipeline_cycles"]),
            sufa_pipeline=int(timing["sufa_pipeline_cycles"]),
            exp_latency=int(timing["exp_latency"]),
            div_latency=int(timing["div_latency"]),
            max_update=int(timing["max_update_cycles"]),
            sram_port=int(timing["sram_port_bytes_per_cycle"]),
        )

    def sram_cycles(self, work: Work) -> int:
        # Optional port limit: each buffer serves at most `sram_port` bytes a cycle.
        if not self.sram_port or not (work.sram_read_bytes or work.sram_write_bytes):
            return 0
        per_buffer: dict[str, int] = {}
        for traffic in (work.sram_read_bytes, work.sram_write_bytes):
            for buffer, count in traffic.items():
                per_buffer[buffer] = per_buffer.get(buffer, 0) + count
        return max(ceil_div(count, self.sram_port) for count in per_buffer.values())

    def dma(self, work: Work, nbytes: int) -> Cost:
        # Requests are pipelined: the engine streams at peak bandwidth and the
        # DRAM latency is paid once, by the last byte.
        latency = self.dram_latency if nbytes or work.dram_requests else 0
        return Cost(self.dma_setup + ceil_div_real(nbytes, self.dram_bytes_per_cycle), latency)

    def dma_read(self, work: Work) -> Cost:
        """A load queue's transfer, which holds the DRAM read channel while it streams."""
        cost = self.dma(work, work.dram_read_bytes)
        return Cost(cost.occupancy, cost.latency, cost.occupancy - self.dma_setup)

    def dlzs(self, work: Work) -> Cost:
        # LZ encoding (Q -> 5-bit LZ) feeds the shift array, so it comes first.
        # The baseline's 4-bit multipliers take the shift-adders' place in the array.
        shift = ceil_div(work.shift_adds + work.mul4_macs, self.dlzs_pes)
        encode = ceil_div(work.lz_encodes, self.lze_units)
        return Cost(shift + encode, self.dlzs_pipeline)

    def sads(self, work: Work) -> Cost:
        sort = ceil_div(work.sort_rounds, self.sads_cores) * self.sads_round
        # The clipping units sit in line with the sorters (values below the
        # threshold are zeroed as they stream in), each seeing one round's inputs per cycle.
        clip = ceil_div(work.compares, self.sads_cores * self.sads_inputs_per_round)
        return Cost(max(sort, clip), self.sads_pipeline)

    def kvgen(self, work: Work) -> Cost:
        return Cost(ceil_div(work.macs, self.kvgen_pes), self.kvgen_pipeline)

    def sufa(self, work: Work) -> Cost:
        # SA-1, AP (EXP), SA-2 and the O-update (DIV) form one pipeline: the
        # slowest stage sets the rate. AP mode-1 (max update) stalls its PE line.
        streams = max(
            ceil_div(work.macs, self.sufa_pes),
            ceil_div(work.exps, self.exp_units),
            ceil_div(work.divs, self.div_units),
            ceil_div(work.compares, self.sufa_rows),
        )
        max_updates = ceil_div(work.max_updates, self.sufa_rows) * self.max_update
        latency = self.sufa_pipeline
        latency += self.exp_latency if work.exps else 0
        latency += self.div_latency if work.divs else 0
        return Cost(streams + max_updates, latency)

    def cost(self, event: Event) -> Cost:
        work = event.work
        match event.unit:
            case Unit.CTRL:
                cost = Cost(self.ctrl_cycles)
            case Unit.DMA_LOAD | Unit.DMA_PREFETCH:
                cost = self.dma_read(work)
            case Unit.DMA_STORE:
                cost = self.dma(work, work.dram_write_bytes)
            case Unit.DLZS:
                cost = self.dlzs(work)
            case Unit.SADS:
                cost = self.sads(work)
            case Unit.KVGEN:
                cost = self.kvgen(work)
            case Unit.SUFA:
                cost = self.sufa(work)
        # Every instruction takes at least one issue cycle, and no less than its SRAM traffic needs.
        return Cost(max(1, cost.occupancy, self.sram_cycles(work)), cost.latency, cost.reads_dram)


def ceil_div_real(amount: int, rate: float) -> int:
    """ceil(amount / rate), tolerant of float noise (4096 / 512.0000000001 is 8)."""
    quotient = amount / rate
    whole = int(quotient)
    return whole if quotient - whole <= 1e-9 else whole + 1


def instruction_cost(event: Event, config: HardwareConfig) -> Cost:
    """Occupancy and latency of one executed instruction on `config`'s hardware."""
    return CostModel.of(config).cost(event)


def dram_bound(config: HardwareConfig, work: Work) -> int:
    """Cycles the run's DRAM traffic needs at peak bandwidth: reads and writes each have their channel."""
    rate = config.dram_bytes_per_cycle
    return max(ceil_div_real(work.dram_read_bytes, rate), ceil_div_real(work.dram_write_bytes, rate))
