"""Stage dumps that are reproducers: the IR, the whole pipeline that makes it, and how far it got.

Every dump `sofa-compile` writes (``--dump-ir-dir``, ``--print-ir-after*``)
ends in MLIR's file-metadata block, as MLIR's own reproducers do::

    {-#
      external_resources: {
        sofa_reproducer: {
          pipeline: "builtin.module(sofa-bind-target,sofa-coordinated-tiling{keep=0.25 tile=16},...)",
          stages: "sofa,tiled,tiled,isa",
          applied: "1"
        }
      }
    #-}

``pipeline`` is every pass with its options (the target is the options of
``sofa-bind-target``, and then the module's ``sofa.target``), ``stages`` the
stage each pass ends in, ``applied`` how many passes made this IR. `sofa-opt
FILE` with no pipeline of its own runs the next pass and prints the next
stage's dump, byte for byte what `sofa-compile` wrote.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

REPRODUCER_KEY = "sofa_reproducer"
_MODULE_PIPELINE = ("builtin.module(", ")")


class ReproducerError(ValueError):
    """A ``sofa_reproducer`` record that does not describe a pipeline."""


def split_pipeline(text: str) -> list[str]:
    """The pass specs of ``builtin.module(a{x=1},b)`` or ``a{x=1},b``, split at top-level commas."""
    text = text.strip()
    opening, closing = _MODULE_PIPELINE
    if text.startswith(opening) and text.endswith(closing):
        text = text[len(opening) : -len(closing)]
    specs, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == '"' and text[index - 1 : index] != "\\":
            quoted = not quoted
        elif not quoted and char in "{(":
            depth += 1
        elif not quoted and char in "})":
            depth -= 1
        elif not quoted and depth == 0 and char == ",":
            specs.append(text[start:index].strip())
            start = index + 1
    if text[start:].strip():
        specs.append(text[start:].strip())
    return specs


@dataclass(frozen=True)
class PipelineRecord:
    """Where a dump stands in its compile: every pass spec, the stage each ends in, how many ran."""

    passes: tuple[str, ...]
    stages: tuple[str, ...]
    applied: int

    @property
    def stage(self) -> str:
        return self.stages[self.applied - 1] if self.applied else "onnx-ir"

    @property
    def step(self) -> str:
        """What made this IR: the last pass's name, or ``import``."""
        return self.passes[self.applied - 1].split("{")[0] if self.applied else "import"

    @property
    def next_pass(self) -> str | None:
        return self.passes[self.applied] if self.applied < len(self.passes) else None

    def advanced(self) -> PipelineRecord:
        return replace(self, applied=self.applied + 1)

    def header(self) -> str:
        return f"// stage {self.stage}, after {self.step}\n"

    def metadata(self) -> str:
        opening, closing = _MODULE_PIPELINE
        pipeline = f"{opening}{','.join(self.passes)}{closing}"
        fields = {"pipeline": pipeline, "stages": ",".join(self.stages), "applied": str(self.applied)}
        lines = [f'      {key}: "{_escape(value)}"' for key, value in fields.items()]
        body = ",\n".join(lines)
        return f"{{-#\n  external_resources: {{\n    {REPRODUCER_KEY}: {{\n{body}\n    }}\n  }}\n#-}}\n"

    def dump(self, module_text: str) -> str:
        """The whole dump file: header comment, the module as printed, the record."""
        return f"{self.header()}{module_text}\n{self.metadata()}"

    @staticmethod
    def read(resources: Mapping[str, Mapping[str, object]]) -> PipelineRecord | None:
        """The record among a file's external resources, if it has one."""
        entry = resources.get(REPRODUCER_KEY)
        if entry is None:
            return None
        pipeline, stages, applied = (entry.get(key) for key in ("pipeline", "stages", "applied"))
        if not (isinstance(pipeline, str) and isinstance(stages, str) and isinstance(applied, str)):
            raise ReproducerError(f"{REPRODUCER_KEY} needs the strings pipeline, stages and applied")
        passes, stage_names = tuple(split_pipeline(pipeline)), tuple(stages.split(",") if stages else ())
        if len(passes) != len(stage_names) or not applied.isdigit() or int(applied) > len(passes):
            raise ReproducerError(
                f"{REPRODUCER_KEY}: {len(passes)} passes, {len(stage_names)} stages, applied {applied}"
            )
        return PipelineRecord(passes, stage_names, int(applied))


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
