"""The simulator's resource bounds: how many instructions a run may execute and how much memory it may declare.

A hand-edited loop count or header could otherwise make one run take days or
ask for gigabytes. Every limit is checked before the work (or allocation)
starts, and breaking one is one clean error naming the limit and how to raise
it. The tools expose the instruction budget as ``--max-instructions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy only where a tensor is checked: the tools' --help imports this module
    import numpy as np

DEFAULT_MAX_INSTRUCTIONS = 100_000_000
"""Executed instructions per kernel run. Hardware loops nest four deep with counts up to 2^24, so a
corrupt loop count could otherwise run for days. A run's count follows from its code alone, so a
program past the budget is refused before it runs (`budget.check_budget`), in milliseconds; the budget
only bounds how long a legitimate program may simulate (about 12 µs per instruction: 100M is about
20 minutes). Ten times the largest workload kernel: Llama-7B at S = 16384, all 32 heads, 9,572,555."""

MAX_DRAM_BYTES = 3 << 30
"""The most DRAM the simulator allocates for one machine (3 GiB); the ISA's 32-bit addresses allow 4 GiB.

The largest real kernel, the separate-stage baseline at S = 32768, spills one head's fp16 A-hat (2 GiB)
to DRAM: 2.23 GB in all. DRAM is allocated zeroed on demand (numpy's calloc), so only the pages a program
touches take memory."""

MAX_TENSOR_BYTES = 1 << 30
"""The largest single tensor the tools draw at random or stage for a kernel (1 GiB)."""


class LimitError(ValueError):
    """A declared size or count past the simulator's limits; the message names the limit."""


def check_dram_bytes(dram_bytes: int, what: str = "the machine") -> int:
    """`dram_bytes` if the simulator may allocate that much DRAM, else `LimitError`."""
    if dram_bytes > MAX_DRAM_BYTES:
        raise LimitError(
            f"{what} asks for {dram_bytes:,} bytes of DRAM; the simulator allocates at most {MAX_DRAM_BYTES:,}"
        )
    return dram_bytes


def check_tensor(name: str, shape: Sequence[int], dtype: np.dtype | str) -> None:
    import numpy as np

    """`LimitError` unless a `shape` tensor of `dtype` stays under `MAX_TENSOR_BYTES` (call it before allocating)."""
    size = np.dtype(dtype).itemsize
    for dim in shape:
        size *= int(dim)
    if size > MAX_TENSOR_BYTES:
        dims = "x".join(str(int(dim)) for dim in shape)
        raise LimitError(
            f"{name}: a {dims} {np.dtype(dtype)} tensor is {size:,} bytes; the limit is {MAX_TENSOR_BYTES:,}"
        )
