"""`#sofa.tile_mask`: an attention mask's tile structure and the format and mapping chosen for it.

Written ``#sofa.tile_mask<format = "bsr", mapping = "block", lanes = 128, tile = 64, visited = 24,
partial = 4, band = [], density = [0.5, 0.25]>``:

* ``format``: how the kernel reads the mask (`MASK_FORMATS`): ``closed`` (a band computed on chip from
  ``band``, no mask bytes), ``bsr`` (per query tile an index list of the non-empty KV tiles, a bitmap
  for each partial one), ``bitmap`` (every KV tile visited, each with its bitmap) or ``launch`` (a mask
  computed at run time: ``bsr`` lists and bitmaps the host builds at launch; ``visited`` and ``partial``
  are the worst case its inputs are sized for, ``density`` is empty);
* ``mapping``: ``block`` (query tiles of the target's lanes) or ``row`` (narrower query tiles, so that
  thin patterns skip more KV tiles; STOF's row-wise kernels) (`MASK_MAPPINGS`);
* ``lanes``, ``tile``: the query and KV tile the structure is for;
* ``visited``: non-empty (query tile, KV tile) pairs, the tile steps the kernel runs;
  ``partial``: those of them that need a bitmap;
* ``band``: ``[left, right, offset, dilation]`` of a closed-form mask (`numerics.tile_masks.BandMask`), or ``[]``;
* ``density``: per query tile, the fraction of (query, key) pairs the mask keeps (4 significant digits).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdsl.dialects.builtin import ArrayAttr, FloatData, IntAttr, StringAttr
from xdsl.ir import Attribute, ParametrizedAttribute
from xdsl.irdl import irdl_attr_definition
from xdsl.parser import AttrParser
from xdsl.printer import Printer
from xdsl.utils.exceptions import VerifyException

MASK_FORMATS = ("closed", "bsr", "bitmap", "launch")
MASK_MAPPINGS = ("block", "row")
_SCALARS = ("lanes", "tile", "visited", "partial")
_KEYS = ("format", "mapping", *_SCALARS, "band", "density")


def rounded_density(value: float) -> float:
    """A density as the attribute keeps it (4 significant digits, so that printing round-trips)."""
    return float(f"{value:.4g}")


@irdl_attr_definition
class TileMaskAttr(ParametrizedAttribute):
    """The tile-level description of one attention's mask (see the module docstring)."""

    name = "sofa.tile_mask"

    format: StringAttr
    mapping: StringAttr
    lanes: IntAttr
    tile: IntAttr
    visited: IntAttr
    partial: IntAttr
    band: ArrayAttr[IntAttr]
    density: ArrayAttr[FloatData]

    def __init__(
        self,
        format: str,
        mapping: str,
        lanes: int,
        tile: int,
        visited: int,
        partial: int,
        band: Sequence[int],
        density: Sequence[float],
    ):
        super().__init__(
            StringAttr(format),
            StringAttr(mapping),
            IntAttr(lanes),
            IntAttr(tile),
            IntAttr(visited),
            IntAttr(partial),
            ArrayAttr([IntAttr(int(v)) for v in band]),
            ArrayAttr([FloatData(rounded_density(float(v))) for v in density]),
        )

    @property
    def format_name(self) -> str:
        return self.format.data

    @property
    def band_values(self) -> tuple[int, ...]:
        return tuple(value.data for value in self.band.data)

    @property
    def densities(self) -> tuple[float, ...]:
        return tuple(value.data for value in self.density.data)

    @classmethod
    def parse_parameters(cls, parser: AttrParser) -> Sequence[Attribute]:
        values: dict[str, object] = {}

        def parse_list() -> list[int | float]:
            return parser.parse_comma_separated_list(parser.Delimiter.SQUARE, parser.parse_number)

        def parse_entry() -> None:
            key = parser.parse_identifier(" (a tile_mask parameter)")
            if key not in _KEYS or key in values:
                parser.raise_error(f"unknown or repeated tile_mask parameter '{key}'; expected {', '.join(_KEYS)}")
            parser.parse_punctuation("=")
            if key in ("format", "mapping"):
                values[key] = parser.parse_str_literal()
            elif key in ("band", "density"):
                values[key] = parse_list()
            else:
                values[key] = parser.parse_integer(allow_boolean=False)

        parser.parse_comma_separated_list(parser.Delimiter.ANGLE, parse_entry)
        if missing := [key for key in _KEYS if key not in values]:
            parser.raise_error(f"tile_mask parameter(s) {', '.join(missing)} missing")
        attr = cls(*(values[key] for key in _KEYS))  # pyright: ignore[reportArgumentType]
        if problem := attr.problem():
            parser.raise_error(problem)
        return attr.parameters

    def print_parameters(self, printer: Printer) -> None:
        scalars = ", ".join(f"{key} = {getattr(self, key).data}" for key in _SCALARS)
        band = ", ".join(str(v) for v in self.band_values)
        density = ", ".join(repr(v) for v in self.densities)
        printer.print_string(
            f'<format = "{self.format.data}", mapping = "{self.mapping.data}", {scalars}, '
            f"band = [{band}], density = [{density}]>"
        )

    def problem(self) -> str | None:
        """What is wrong with the description, or None."""
        if self.format.data not in MASK_FORMATS:
            return f"tile_mask format must be one of {', '.join(MASK_FORMATS)}, got '{self.format.data}'"
        if self.mapping.data not in MASK_MAPPINGS:
            return f"tile_mask mapping must be one of {', '.join(MASK_MAPPINGS)}, got '{self.mapping.data}'"
        if self.lanes.data < 1 or self.tile.data < 1:
            return "tile_mask lanes and tile must be >= 1"
        if not 0 <= self.partial.data <= self.visited.data:
            return "tile_mask partial must lie in [0, visited]"
        if len(self.band_values) not in (0, 4):
            return "tile_mask band is [left, right, offset, dilation] or []"
        if (self.format.data == "closed") != bool(self.band_values):
            return "tile_mask: the closed format needs a band, and only it has one"
        if any(not 0.0 <= d <= 1.0 for d in self.densities):
            return "tile_mask densities must lie in [0, 1]"
        return None

    def verify(self) -> None:
        if problem := self.problem():
            raise VerifyException(problem)
