"""The explicit `sofa_isa` op classes and the instruction table agree one-to-one."""

import inspect

import pytest
from xdsl.dialects.builtin import I64, IntegerAttr
from xdsl.irdl import irdl_to_attr_constraint

from dialects import sofa_isa
from dialects.sofa_isa import INSTRUCTION_OPS, LOOP_MNEMONICS, OPS, PROPERTY_TYPES, IsaInstructionOp, OpSpec
from dialects.sofa_isa import ops as ops_module

INSTRUCTION_SPECS = [spec for spec in OPS if spec.mnemonic not in LOOP_MNEMONICS]


def test_every_instruction_has_exactly_one_class():
    assert list(INSTRUCTION_OPS) == [spec.mnemonic for spec in INSTRUCTION_SPECS]
    declared = {
        cls
        for _, cls in inspect.getmembers(ops_module, inspect.isclass)
        if issubclass(cls, IsaInstructionOp) and "name" in vars(cls)  # bases of shared fields have no name
    }
    assert declared == set(INSTRUCTION_OPS.values())
    assert len(declared) == len(INSTRUCTION_SPECS)


@pytest.mark.parametrize("spec", INSTRUCTION_SPECS, ids=lambda spec: spec.mnemonic)
def test_class_matches_its_spec(spec: OpSpec):
    cls = INSTRUCTION_OPS[spec.mnemonic]
    assert cls.SPEC is spec
    assert cls.name == spec.ir_name
    properties = cls.get_irdl_definition().properties
    # The instruction's fields in encoding order, then the two semaphore masks.
    assert list(properties) == [field.name for field in spec.fields] + ["wait", "signal"]
    for field in spec.fields:
        assert properties[field.name].constr == irdl_to_attr_constraint(PROPERTY_TYPES[field.kind]), field.name
    for mask in ("wait", "signal"):
        assert properties[mask].constr == irdl_to_attr_constraint(IntegerAttr[I64])


def test_every_field_kind_has_a_property_type():
    assert {field.kind for spec in OPS for field in spec.fields} <= set(PROPERTY_TYPES)


def test_class_names_do_not_clash_with_the_sofa_dialect():
    from dialects import sofa

    shared = {name for name in sofa_isa.__all__ if name.endswith("Op")} & {
        name for name in dir(sofa) if name.endswith("Op")
    }
    assert shared == set()


def test_the_package_exports_every_op_class():
    for cls in INSTRUCTION_OPS.values():
        assert getattr(sofa_isa, cls.__name__) is cls
        assert cls.__name__ in sofa_isa.__all__
