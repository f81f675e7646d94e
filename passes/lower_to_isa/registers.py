"""Scalar registers and semaphores of the attention kernels, each role named once.

r0 reads as zero. r1-r9 mean the same in both kernels (`Reg`); r10-r15 belong
to one kernel (`CoordinatedReg`, `SeparateReg`). A role shares a register with
another only where `SHARED` says so; `check_allocation` rejects any other overlap.
"""

from __future__ import annotations

from enum import IntEnum

from dialects.sofa_isa import REGISTERS


class Reg(IntEnum):
    """Registers both kernels use the same way."""

    ZERO = 0
    Q16 = 1
    """Byte offset of the query tile's rows in ``q16``."""
    Q = 2
    """Byte offset of the query tile's rows in ``q``."""
    QBASE = 3
    """Global index of the query tile's first query."""
    OUT = 4
    """Byte offset of the query tile's rows in ``o``."""
    KBASE = 5
    """Global index of the current KV tile's (or generation window's) first key."""
    PRED = 6
    """Address of the current K-hat tile."""
    K = 7
    """Byte offset of the KV head's rows in ``k``."""
    V = 8
    """Byte offset of the KV head's rows in ``v``."""
    PRED_HEAD = 9
    """Byte offset of the KV head's rows in ``khat``."""


class CoordinatedReg(IntEnum):
    """Registers of the coordinated kernel beyond `Reg`."""

    XEXP = 10
    """On demand: the K-hat pass's token-exponent tile address."""
    CODES = 11
    """On demand: the KV head's LZ-code column offset."""
    X8 = 12
    """On demand: the K-hat pass's 8-bit token tile address."""
    K_TILE = 13
    """Without RASS: the K tile address."""
    V_TILE = 14
    """Without RASS: the V tile address."""
    GROUPS = 15
    """Causal skipping: whole groups of KV tiles (one per buffer-set round) the current query tile needs."""
    # Shared on purpose (see SHARED): K/V generation runs on RASS kernels only, which never
    # walk whole K/V tiles; its token walk reuses PRED, which the attention pass re-initialises
    # for every query tile.
    GEN_WK = 13
    """K/V generation: the KV head's W_k block, advanced chunk by chunk and rewound after each window."""
    GEN_WV = 14
    """K/V generation: the KV head's W_v block."""
    GEN_X = 6
    """K/V generation: the token chunk address."""
    # Masked kernels are never on demand (the tiling pass keeps their K-hat on the host), so the
    # index-list walk and the bitmap address reuse the on-demand token registers.
    MASK_TABLE = 10
    """General masks: byte offset of the next word of the mask's index lists (``masktab``)."""
    MASK_BITMAP = 11
    """General masks: byte offset of the current tile's bitmap in ``maskbits`` (bias tile in ``maskbias``)."""


class SeparateReg(IntEnum):
    """Registers of the separate-stage baseline kernel beyond `Reg`."""

    V_TILE = 10
    """Attention phase: the V tile address."""
    AHAT_ROW = 13
    """Byte offset of the query tile's A-hat rows in ``ahat``."""
    AHAT_TILE = 14
    """Address of the current A-hat tile."""
    K_TILE = 15
    """Attention phase: the K tile address."""


SHARED = {
    CoordinatedReg: {
        "GEN_WK": "K_TILE",
        "GEN_WV": "V_TILE",
        "GEN_X": "PRED",
        "MASK_TABLE": "XEXP",
        "MASK_BITMAP": "CODES",
    },
    SeparateReg: {},
}
"""Per kernel, the roles that share a register on purpose: role -> the role whose register it reuses."""


def check_allocation(mode: type[IntEnum]) -> None:
    """Every register of `Reg` and `mode` is in range and has one role, except the `SHARED` ones."""
    owners: dict[int, str] = {}
    for name, member in [*Reg.__members__.items(), *mode.__members__.items()]:
        if not 0 <= member < REGISTERS:
            raise AssertionError(f"{mode.__name__}.{name}: r{int(member)} is not a register")
        owner = owners.setdefault(int(member), name)
        if owner != name and SHARED.get(mode, {}).get(name) != owner:
            raise AssertionError(f"{mode.__name__}.{name} silently shares r{int(member)} with {owner}")


for _mode in SHARED:
    check_allocation(_mode)


class Sem(IntEnum):
    """Counting semaphores that hand a KV tile's data from unit to unit."""

    KHAT_LOADED = 0
    """K-hat tile loaded (separate attention phase: masked A-hat tile loaded)."""
    AHAT_READY = 1
    INDICES_READY = 2
    LIST_READY = 3
    """RASS list ready."""
    KV_FETCHED = 4
    """K and V rows on chip."""
    KHAT_FREE = 5
    """A K-hat/A-hat buffer set is free (one credit per set)."""
    KV_FREE = 6
    """An index/list/K/V buffer set is free (one credit per set)."""
    O_READY = 7
