"""Shape and type checks shared by the `sofa` ops' verifiers.

Each raises `VerifyException` with a message naming the operand, so an op's
``verify_`` reads as a list of its rules.
"""

from __future__ import annotations

import math

from xdsl.dialects.builtin import Float16Type, Float32Type, Float64Type, FloatAttr, TensorType, i1
from xdsl.ir import Attribute, SSAValue
from xdsl.utils.exceptions import VerifyException


def tensor_of(value: SSAValue | Attribute, what: str) -> TensorType[Attribute]:
    value_type = value.type if isinstance(value, SSAValue) else value
    if not isinstance(value_type, TensorType):
        raise VerifyException(f"{what} must be a ranked tensor, got {value_type}")
    return value_type  # pyright: ignore[reportUnknownVariableType]


def static_shape(value: SSAValue | Attribute, what: str, rank: int) -> tuple[int, ...]:
    tensor = tensor_of(value, what)
    shape = tuple(tensor.get_shape())
    if len(shape) != rank:
        raise VerifyException(f"{what} must have rank {rank}, got {tensor}")
    if any(dim < 0 for dim in shape):
        raise VerifyException(f"{what} must have a static shape, got {tensor}")
    return shape


def is_float(element: Attribute) -> bool:
    return isinstance(element, Float16Type | Float32Type | Float64Type)


def expect_float(value: SSAValue, what: str) -> None:
    if not is_float(tensor_of(value, what).element_type):
        raise VerifyException(f"{what} must have a float element type, got {value.type}")


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise VerifyException(message)


def expect_positive_scale(scale: FloatAttr) -> None:
    """The softmax scale multiplies every score; it must be positive."""
    expect(scale.value.data > 0, f"scale must be positive, got {scale.value.data}")


def verify_softcap(softcap: FloatAttr | None) -> None:
    """A softcap c caps scores as c * tanh(s / c): finite and positive where given (absent: no cap)."""
    if softcap is not None:
        value = softcap.value.data
        expect(math.isfinite(value) and value > 0, f"softcap must be finite and positive, got {value}")


def softcap_value(softcap: FloatAttr | None) -> float:
    """An op's softcap as a number: 0.0 where it has none."""
    return 0.0 if softcap is None else softcap.value.data


def is_boolean_mask(mask: SSAValue) -> bool:
    return tensor_of(mask, "mask").element_type == i1


def verify_heads(q_heads: int, kv_heads: int) -> None:
    expect(q_heads >= 1 and kv_heads >= 1, f"head counts must be positive, got {q_heads} and {kv_heads}")
    expect(
        q_heads % kv_heads == 0,
        f"query heads ({q_heads}) must be a multiple of KV heads ({kv_heads}) for GQA/MQA",
    )


def verify_mask(mask: SSAValue | None, target_shape: tuple[int, ...]) -> None:
    """A mask is boolean (keep where true) or float (additive), broadcastable to the scores."""
    if mask is None:
        return
    mask_type = tensor_of(mask, "mask")
    element = mask_type.element_type
    expect(
        element == i1 or is_float(element),
        f"mask must have i1 (boolean) or float elements, got {mask.type}",
    )
    shape = tuple(mask_type.get_shape())
    expect(len(shape) <= len(target_shape), f"mask rank {len(shape)} exceeds the scores' rank {len(target_shape)}")
    for dim, full in zip(reversed(shape), reversed(target_shape)):
        expect(dim in (1, full), f"mask shape {list(shape)} does not broadcast to scores shape {list(target_shape)}")


def verify_score_shapes(q: SSAValue, k: SSAValue, scores: SSAValue) -> None:
    """Shapes of a score predictor: Q [B, Hq, Sq, d], K [B, Hkv, Skv, d] -> fp16 [B, Hq, Sq, Skv]."""
    expect_float(q, "Q")
    expect_float(k, "K-hat")
    batch, q_heads, q_len, depth = static_shape(q, "Q", 4)
    k_batch, kv_heads, kv_len, k_depth = static_shape(k, "K-hat", 4)
    expect(batch == k_batch, f"batch sizes differ: Q {batch}, K-hat {k_batch}")
    expect(depth == k_depth, f"Q and K-hat head dims differ: {depth} vs {k_depth}")
    verify_heads(q_heads, kv_heads)
    expected = (batch, q_heads, q_len, kv_len)
    scores_type = tensor_of(scores, "scores")
    expect(
        tuple(scores_type.get_shape()) == expected and isinstance(scores_type.element_type, Float16Type),
        f"scores must be tensor<{'x'.join(map(str, expected))}xf16>, got {scores.type}",
    )
