"""Energy by component from a timing run: engines by their busy cycles, SRAM and DRAM by their traffic."""

from __future__ import annotations

from sofa_compiler.sim.events import Unit
from sofa_compiler.sim.timing import TimingResult

ENERGY_KEYS: dict[Unit, str] = {Unit.DLZS: "dlzs", Unit.SADS: "sads", Unit.KVGEN: "kvgen", Unit.SUFA: "sufa"}
"""Units with their own Table III power; CTRL and the DMA engines are in `other`."""


def energy_pj(result: TimingResult) -> dict[str, float]:
    """Energy by component in pJ: dlzs, sads, kvgen, sufa, sram, other, dram, io.

    - Engines draw their pJ/cycle while busy and `idle_power_fraction` of it
      otherwise (stalls included: a waiting engine is clock-gated, not off).
    - SRAM: `sram_pj_per_cycle` is the draw at `sram_reference_bytes_per_cycle`
      of traffic, so each byte costs pJ/cycle / reference bytes; the cycles
      not covered by traffic draw the idle fraction.
    - `other` (scheduler, controller, DMA engines) is always on.
    - DRAM and interface energy are per bit moved.
    """
    energy, total = result.config.energy, result.total_cycles
    idle = float(energy["idle_power_fraction"])
    out: dict[str, float] = {}
    for unit, key in ENERGY_KEYS.items():
        power = result.config.unit_pj_per_cycle(key, result.work.shift_adds, result.work.mul4_macs)
        busy = result.units[unit].busy
        out[key] = busy * power + (total - busy) * power * idle
    work = result.work
    sram_bytes = sum(work.sram_read_bytes.values()) + sum(work.sram_write_bytes.values())
    dram_bits = 8 * (work.dram_read_bytes + work.dram_write_bytes)
    sram_power = float(energy["sram_pj_per_cycle"])
    sram_active = sram_bytes / float(energy["sram_reference_bytes_per_cycle"])
    out["sram"] = sram_active * sram_power + max(0.0, total - sram_active) * sram_power * idle
    out["other"] = total * float(energy["other_pj_per_cycle"])
    out["dram"] = dram_bits * float(energy["dram_pj_per_bit"])
    out["io"] = dram_bits * float(energy["io_pj_per_bit"])
    return out
