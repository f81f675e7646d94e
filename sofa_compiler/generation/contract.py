"""The interface of a generation graph pair: the names and shapes `GenerationSession` relies on.

Prefill graph: ``input_ids [1, S]`` (int64) -> ``logits [1, S, V]`` and, for each layer i,
``present_key.i`` / ``present_value.i`` ``[1, Hkv, S, d]``.

Decode-step graph (the external cache of ONNX opset 24): ``input_ids [M, 1]``,
``cache_length [M]`` (int64: the tokens already in the cache, the new token's position) and
``past_key.i`` / ``past_value.i`` ``[M, Hkv, C, d]`` of capacity C -> ``logits [M, 1, V]`` and
``present_key.i`` / ``present_value.i`` ``[M, Hkv, C, d]``: the cache with the new token's K/V
written at row ``cache_length`` (`TensorScatter`); attention reads rows ``< cache_length + 1``
(`nonpad_kv_seqlen`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sofa_compiler.driver import CompiledModel

INPUT_IDS = "input_ids"
LOGITS = "logits"
CACHE_LENGTH = "cache_length"


def past_key(layer: int) -> str:
    return f"past_key.{layer}"


def past_value(layer: int) -> str:
    return f"past_value.{layer}"


def present_key(layer: int) -> str:
    return f"present_key.{layer}"


def present_value(layer: int) -> str:
    return f"present_value.{layer}"


class GenerationError(Exception):
    """Graphs or a request that generation cannot run (the message says what is wrong)."""


@dataclass(frozen=True)
class GraphPair:
    """A compiled prefill graph and decode-step graph that follow this module's contract."""

    prefill: CompiledModel
    decode: CompiledModel

    @property
    def layers(self) -> int:
        outputs = set(self.prefill.output_names())
        count = 0
        while present_key(count) in outputs and present_value(count) in outputs:
            count += 1
        return count

    @property
    def prompt_length(self) -> int:
        return self._shape(self.prefill, INPUT_IDS)[1]

    @property
    def samples(self) -> int:
        return self._shape(self.decode, INPUT_IDS)[0]

    @property
    def capacity(self) -> int:
        return self._shape(self.decode, past_key(0))[2]

    def check(self) -> None:
        """Raise `GenerationError` unless both graphs follow the contract and fit together."""
        if self.layers == 0:
            raise GenerationError(f"the prefill graph has no '{present_key(0)}'/'{present_value(0)}' outputs")
        prefill_ids = self._shape(self.prefill, INPUT_IDS)
        if len(prefill_ids) != 2 or prefill_ids[0] != 1:
            raise GenerationError(f"the prefill graph's {INPUT_IDS} must be [1, S], got {list(prefill_ids)}")
        decode_ids = self._shape(self.decode, INPUT_IDS)
        if len(decode_ids) != 2 or decode_ids[1] != 1:
            raise GenerationError(f"the decode graph's {INPUT_IDS} must be [M, 1], got {list(decode_ids)}")
        if self._shape(self.decode, CACHE_LENGTH) != (self.samples,):
            raise GenerationError(f"the decode graph's {CACHE_LENGTH} must be [{self.samples}]")
        names = set(self.decode.output_names())
        for layer in range(self.layers):
            cache = self._shape(self.decode, past_key(layer))
            prompt = self._shape(self.prefill, present_key(layer), output=True)
            if cache[:2] != (self.samples, prompt[1]) or cache[3] != prompt[3]:
                raise GenerationError(
                    f"layer {layer}: the decode cache {list(cache)} does not hold the prefill's K/V {list(prompt)}"
                )
            if present_key(layer) not in names or present_value(layer) not in names:
                raise GenerationError(f"the decode graph has no '{present_key(layer)}'/'{present_value(layer)}'")
        if self.capacity <= self.prompt_length:
            raise GenerationError(
                f"the decode cache holds {self.capacity} tokens, no more than the {self.prompt_length}-token prompt"
            )

    @staticmethod
    def _shape(model: CompiledModel, name: str, output: bool = False) -> tuple[int, ...]:
        if output:
            results = model.main.function_type.outputs.data
            for index, result_name in enumerate(model.output_names()):
                if result_name == name:
                    return tuple(results[index].get_shape())  # pyright: ignore[reportAttributeAccessIssue]
            raise GenerationError(f"the graph has no output '{name}'")
        for input_name, shape, _ in model.input_specs():
            if input_name == name:
                return shape
        raise GenerationError(f"the graph has no input '{name}' (it has {', '.join(model.input_names())})")
