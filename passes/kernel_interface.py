"""The DRAM interface of an attention kernel: one contract for the lowering and the host runtime.

A kernel made by `sofa-lower-to-isa` reads and writes named DRAM symbols. Which
symbols exist depends on its kind (`KernelKind`); each symbol has a layout
(rows x columns of one dtype), a kind (what the host does with it) and, for
inputs, a staging rule (how the host makes it from a `sofa.kernel_call`
operand). Layouts, with ``Pq``/``Pk`` the padded query/key lengths and
``H`` the token width:

    q, q16   [B*Hq*Pq, d]        f16             Q rows, head after head (q16: the copy DLZS reads)
    k, khat  [B*Hkv*Pk, d]       f16             K rows (khat: predicted on chip on demand)
    v        [B*Hkv*Pk, dv]      f16
    x8, xexp [B*Pk, H] / [B*Pk, 1]  i8           8-bit token rows and their exponents
    codes    [H, Hkv*d]          i8              LZ codes of W_k
    x32      [B*Pk, H]           f32             tokens for on-chip K/V generation
    wk, wv   [Hkv*(H+1), d|dv]   f32             per KV head: W rows, then the bias row
    o        [B*Hq*Pq, dv]       f16             the output

A kernel for a mask computed at run time (`KernelInterface.launch_mask`) also takes the mask as its
last operand; its private ``masktab`` / ``maskbits`` are then inputs the host builds at launch
(``sofa_compiler.runtime.stage_launch_mask``), described by the constant ``maskgeom``. A run-time
additive mask's kernel has ``maskbias`` (fp32 bias tiles ``[lanes, Bc]``, one per visited tile pair)
in place of ``maskbits``.

Q, K, V and O are the datapath's element (`numerics.DATAPATH`, fp16); only the
fp32 rows of on-chip K/V generation are `numerics.ACCUMULATOR`. The symbols are
laid out in this order, each aligned to `DRAM_ALIGN` bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from xdsl.dialects.builtin import ArrayAttr

from dialects.numerics import ACCUMULATOR, DATAPATH
from dialects.sofa_isa import Dram, SymbolAttr
from passes.tile_plan import AttentionShape

DRAM_ALIGN = 64
ELEMENT_BYTES = {"i8": 1, "u8": 1, "f16": 2, "f32": 4, "i32": 4}


class Symbol(StrEnum):
    """A DRAM symbol's name (its value, as written in a program's symbol table)."""

    Q = "q"
    Q16 = "q16"
    K = "k"
    V = "v"
    X8 = "x8"
    XEXP = "xexp"
    CODES = "codes"
    X32 = "x32"
    WK = "wk"
    WV = "wv"
    KHAT = "khat"
    OUT = "o"
    NEEDED = "needed"
    """Generating kernels at keep 1.0 without a sphere clip: the known needed-key bitmap (kernel-private)."""
    AHAT = "ahat"
    """Separate-stage baseline: one head's A-hat spilled to DRAM (kernel-private)."""
    MASK_TABLE = "masktab"
    """A general mask's index lists: per query tile, the KV tiles to visit (kernel-private, constant)."""
    MASK_BITS = "maskbits"
    """A general mask's tile bitmaps (kernel-private, constant)."""
    MASK_BIAS = "maskbias"
    """A run-time additive mask's fp32 bias tiles, built by the host at launch (kernel-private, input)."""
    MASK_GEOMETRY = "maskgeom"
    """A run-time mask's kernel: what the host needs to build `MASK_TABLE` and `MASK_BITS` at launch
    (`lower_to_isa.masked.LaunchGeometry`; constant). Those two are then inputs, sized for the worst case."""


PRIVATE_SYMBOLS = frozenset(
    {Symbol.NEEDED, Symbol.AHAT, Symbol.MASK_TABLE, Symbol.MASK_BITS, Symbol.MASK_BIAS, Symbol.MASK_GEOMETRY}
)
"""Symbols a kernel keeps for itself beyond its interface (placed after it); the host never sees them."""


class SymbolKind(StrEnum):
    """Who fills a symbol: the host (input), the kernel for the host (output), the program image
    (const), or the kernel for itself (scratch)."""

    INPUT = "input"
    OUTPUT = "output"
    CONST = "const"
    SCRATCH = "scratch"


class Operand(StrEnum):
    """A tensor a `sofa.kernel_call` passes: logical Q, K, V ``[B, H, S, d]`` or the tokens X ``[B, S, H]``."""

    Q = "q"
    K = "k"
    V = "v"
    X = "x"
    MASK = "mask"
    """A mask computed at run time (its kernel's index lists and bitmaps or bias tiles are built at launch)."""


class Staging(Enum):
    """How the host makes an input symbol from its operand (see `sofa_compiler.runtime`)."""

    ROWS = "rows"
    """Datapath (fp16, saturating) rows, heads flattened, each head's sequence padded with zero rows."""
    TOKENS_I8 = "tokens-i8"
    """8-bit token rows (`numerics.quantize_token_rows`), padded like `ROWS`."""
    TOKEN_EXPONENTS = "token-exponents"
    """The token rows' exponents, one per row."""
    TOKENS_F32 = "tokens-f32"
    """fp32 token rows for on-chip K/V generation (`numerics.ACCUMULATOR`)."""


class KernelKind(Enum):
    """Where a kernel's K-hat, K and V come from."""

    PLAIN = "plain"
    """The host stages K, V and K-hat."""
    ON_DEMAND = "on-demand"
    """K-hat predicted on chip from the tokens X and the LZ codes of W_k; the host stages K and V."""
    GENERATING = "generating"
    """On demand, and K/V generated on chip from X (only the selected rows): the host stages Q and X only."""


@dataclass(frozen=True)
class SymbolSpec:
    """One DRAM symbol of a kernel kind: name, kind, dtype and, for inputs, its operand and staging."""

    name: Symbol
    kind: SymbolKind
    dtype: str
    operand: Operand | None = None
    staging: Staging | None = None


@dataclass(frozen=True)
class KernelInterface:
    """The DRAM symbols and `sofa.kernel_call` operands of one kernel kind."""

    kind: KernelKind
    launch_mask: bool = False
    """The kernel takes a run-time mask last; the host builds its `Symbol.MASK_TABLE` and `Symbol.MASK_BITS`."""

    @property
    def on_demand(self) -> bool:
        return self.kind is not KernelKind.PLAIN

    @property
    def generates(self) -> bool:
        return self.kind is KernelKind.GENERATING

    @property
    def operands(self) -> tuple[Operand, ...]:
        """The `sofa.kernel_call` operands, in order: Q, then K and V unless generated, then X on demand, then
        a run-time mask."""
        mask = (Operand.MASK,) if self.launch_mask else ()
        if self.generates:
            return (Operand.Q, Operand.X, *mask)
        if self.on_demand:
            return (Operand.Q, Operand.K, Operand.V, Operand.X, *mask)
        return (Operand.Q, Operand.K, Operand.V, *mask)

    def symbols(self) -> tuple[SymbolSpec, ...]:
        """Every symbol in layout order (kernel-private symbols excepted)."""
        input_, kv_kind = SymbolKind.INPUT, SymbolKind.SCRATCH if self.generates else SymbolKind.INPUT
        kv_staging = None if self.generates else Staging.ROWS
        element, wide = DATAPATH.name, ACCUMULATOR.name
        specs = [
            SymbolSpec(Symbol.Q, input_, element, Operand.Q, Staging.ROWS),
            SymbolSpec(Symbol.Q16, input_, element, Operand.Q, Staging.ROWS),
            SymbolSpec(Symbol.K, kv_kind, element, None if self.generates else Operand.K, kv_staging),
            SymbolSpec(Symbol.V, kv_kind, element, None if self.generates else Operand.V, kv_staging),
        ]
        if self.on_demand:
            specs += [
                SymbolSpec(Symbol.X8, input_, "i8", Operand.X, Staging.TOKENS_I8),
                SymbolSpec(Symbol.XEXP, input_, "i8", Operand.X, Staging.TOKEN_EXPONENTS),
                SymbolSpec(Symbol.CODES, SymbolKind.CONST, "i8"),
            ]
        if self.generates:
            specs += [
                SymbolSpec(Symbol.X32, input_, wide, Operand.X, Staging.TOKENS_F32),
                SymbolSpec(Symbol.WK, SymbolKind.CONST, wide),
                SymbolSpec(Symbol.WV, SymbolKind.CONST, wide),
            ]
        # On demand, the kernel predicts K-hat itself, once per KV head.
        if self.on_demand:
            specs.append(SymbolSpec(Symbol.KHAT, SymbolKind.SCRATCH, "f16"))
        else:
            specs.append(SymbolSpec(Symbol.KHAT, input_, "f16", Operand.K, Staging.ROWS))
        specs.append(SymbolSpec(Symbol.OUT, SymbolKind.OUTPUT, element))
        return tuple(specs)

    def inputs(self) -> tuple[SymbolSpec, ...]:
        """The symbols the host stages, in layout order."""
        return tuple(spec for spec in self.symbols() if spec.kind is SymbolKind.INPUT)

    def shapes(self, shape: AttentionShape, padded_q: int, padded_kv: int) -> dict[Symbol, tuple[int, int]]:
        """Every symbol's ``(rows, columns)`` for an attention of `shape` padded to the given lengths."""
        q_rows = shape.batch * shape.q_heads * padded_q
        kv_rows = shape.batch * shape.kv_heads * padded_kv
        token_rows = shape.batch * padded_kv
        d, dv, hidden, heads = shape.depth, shape.v_depth, shape.hidden, shape.kv_heads
        shapes = {
            Symbol.Q: (q_rows, d),
            Symbol.Q16: (q_rows, d),
            Symbol.K: (kv_rows, d),
            Symbol.V: (kv_rows, dv),
            Symbol.X8: (token_rows, hidden),
            Symbol.XEXP: (token_rows, 1),
            Symbol.CODES: (hidden, heads * d),
            Symbol.X32: (token_rows, hidden),
            Symbol.WK: (heads * (hidden + 1), d),
            Symbol.WV: (heads * (hidden + 1), dv),
            Symbol.KHAT: (kv_rows, d),
            Symbol.OUT: (q_rows, dv),
        }
        return {spec.name: shapes[spec.name] for spec in self.symbols()}

    @classmethod
    def of_symbols(cls, symbols: Mapping[str, str]) -> KernelInterface:
        """The interface whose symbols a program has (``{name: kind}``), ignoring kernel-private ones;
        `ValueError` if it matches no kernel kind."""
        private = {symbol.value for symbol in PRIVATE_SYMBOLS}
        found = {name: kind for name, kind in symbols.items() if name not in private}
        launch_mask = symbols.get(Symbol.MASK_TABLE.value) == SymbolKind.INPUT.value
        for kind in KernelKind:
            interface = cls(kind, launch_mask)
            if found == {spec.name.value: spec.kind.value for spec in interface.symbols()}:
                return interface
        raise ValueError(f"the program's DRAM symbols ({', '.join(sorted(found))}) match no attention kernel")


@dataclass
class KernelLayout:
    """The DRAM symbols of one kernel, placed one after another."""

    symbols: dict[Symbol, SymbolAttr] = field(default_factory=dict)
    top: int = 0

    def add(self, name: Symbol, shape: tuple[int, int], dtype: str, kind: SymbolKind) -> int:
        address = -(-self.top // DRAM_ALIGN) * DRAM_ALIGN
        size = shape[0] * shape[1] * ELEMENT_BYTES[dtype]
        self.top = address + size
        self.symbols[name] = SymbolAttr(name.value, kind.value, dtype, shape, address, size)
        return address

    def add_interface(self, interface: KernelInterface, shapes: Mapping[Symbol, tuple[int, int]]) -> None:
        """Place every symbol of `interface`, in its order."""
        for spec in interface.symbols():
            self.add(spec.name, shapes[spec.name], spec.dtype, spec.kind)

    def address(self, name: Symbol) -> int:
        return self.symbols[name].address.data

    def dram(self, reg: int, name: Symbol, offset: int = 0) -> Dram:
        """The DRAM operand ``r[reg] + name + offset``."""
        return Dram(int(reg), self.address(name) + offset)

    def attrs(self) -> ArrayAttr[SymbolAttr]:
        return ArrayAttr(list(self.symbols.values()))
