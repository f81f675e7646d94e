"""Lower tiled SOFA attention to `sofa_isa` kernels.

Each tiled `sofa.sufa` (with its `sofa.sads` and `sofa.dlzs_score`) becomes a
`sofa_isa.program` named ``attnN`` and a `sofa.kernel_call` in its place. The
program loops in hardware, so its size does not depend on sequence length.

* `lower`: the rewrite pattern and the `sofa-lower-to-isa` pass;
* `kernel`: what both kernels share (DRAM layout, SRAM regions, prologue, K/V fetch, output);
* `coordinated`: SOFA's kernel; `generation`: its on-chip K/V generation passes;
* `separate`: the separate-stage baseline kernel;
* `emitter`: typed instruction construction; `registers`: register and semaphore roles.

The kernels' DRAM symbols are defined by `passes.kernel_interface`, which the
host runtime reads too.
"""

from passes.lower_to_isa.lower import KERNEL_PREFIX, LowerToIsaPass

__all__ = ["KERNEL_PREFIX", "LowerToIsaPass"]
