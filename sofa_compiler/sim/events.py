"""The contract between the functional simulator and the timing/energy model.

The functional machine (`functional.py`) executes a program in order and
records one `Event` per unit instruction it executes, with the amount of work
done. The timing model (`timing.py`) turns events into cycles and energy using
the hardware configuration; it never looks at data values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Unit(StrEnum):
    """Hardware units; each runs its instructions in order, units overlap."""

    CTRL = "ctrl"  # scalar registers, loops, barriers
    DMA_LOAD = "dma_load"  # HBM -> SRAM
    DMA_PREFETCH = "dma_prefetch"  # HBM -> SRAM, the second load queue (K-hat); shares the read bandwidth
    DMA_STORE = "dma_store"  # SRAM -> HBM
    DLZS = "dlzs"  # 128x32 shift array + 128 LZEs
    SADS = "sads"  # 128 16->4 sort cores (+ RASS scheduler)
    KVGEN = "kvgen"  # 128x4 KV-generation PE array
    SUFA = "sufa"  # 128x4 PEs, 128 EXP, 128 DIV


class Buffer(StrEnum):
    """On-chip SRAMs."""

    TOKEN = "token"
    WEIGHT = "weight"
    TEMP = "temp"


@dataclass
class Work:
    """What one instruction did, in hardware-neutral counts.

    Compute counts are element operations; the timing model divides them by
    the unit's parallelism (array shape) to get cycles.
    """

    dram_read_bytes: int = 0
    dram_write_bytes: int = 0
    dram_requests: int = 0  # contiguous bursts (rows) issued; each pays DRAM latency once per instruction
    sram_read_bytes: dict[Buffer, int] = field(default_factory=dict)
    sram_write_bytes: dict[Buffer, int] = field(default_factory=dict)
    shift_adds: int = 0  # DLZS shift-and-add operations (after zero elimination)
    lz_encodes: int = 0  # LZE conversions (Q -> 5-bit LZ)
    mul4_macs: int = 0  # 4-bit multiply-accumulates of the baseline predictor (ablation only)
    sort_rounds: int = 0  # 16->4 sort-core rounds, summed over lanes
    compares: int = 0  # comparisons (SADS clip, AP max-ensure)
    macs: int = 0  # 16-bit multiply-accumulates (KV generation, SU-FA SA-1/SA-2)
    exps: int = 0  # EXP unit evaluations
    divs: int = 0  # DIV unit evaluations
    max_updates: int = 0  # AP mode-1 events (predicted max was beaten)
    dense_ops: int = 0  # dense-equivalent ops this instruction stands for (for effective GOPS)


@dataclass
class Event:
    """One executed unit instruction."""

    pc: int
    unit: Unit
    opcode: str
    wait_mask: int  # semaphores this instruction waits on (one bit each)
    signal_mask: int  # semaphores it signals when done
    work: Work
    text: str = ""  # disassembly, for traps and traces


@dataclass
class SramPeak:
    """Highest byte offset touched in each buffer (occupancy high-water mark)."""

    bytes_used: dict[Buffer, int] = field(default_factory=lambda: {b: 0 for b in Buffer})

    def touch(self, buffer: Buffer, end_offset: int) -> None:
        self.bytes_used[buffer] = max(self.bytes_used[buffer], end_offset)
