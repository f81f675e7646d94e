"""Transformations on the `sofa` and `sofa_isa` dialects.

Layering: this package may import `dialects`, never `sofa_compiler`.
"""

from collections.abc import Callable

from xdsl.passes import ModulePass


def get_all_passes() -> dict[str, Callable[[], type[ModulePass]]]:
    """Return every SOFA pass by name, each behind a closure.

    The closures keep `sofa-opt --help` and the xDSL multiverse cheap: a pass
    module is imported only when the pass is actually requested. To add one:

        def get_sofa_tile():
            from passes.sofa_tile import SofaTilePass

            return SofaTilePass

        return {"sofa-tile": get_sofa_tile}
    """

    def get_coordinated_tiling() -> type[ModulePass]:
        from passes.coordinated_tiling import CoordinatedTilingPass

        return CoordinatedTilingPass

    def get_lower_to_isa() -> type[ModulePass]:
        from passes.lower_to_isa import LowerToIsaPass

        return LowerToIsaPass

    def get_preprocess_weights() -> type[ModulePass]:
        from passes.preprocess_weights import PreprocessWeightsPass

        return PreprocessWeightsPass

    def get_separate_stage_tiling() -> type[ModulePass]:
        from passes.coordinated_tiling import SeparateStageTilingPass

        return SeparateStageTilingPass

    def get_bind_target() -> type[ModulePass]:
        from passes.bind_target import BindTargetPass

        return BindTargetPass

    def get_apply_tuning() -> type[ModulePass]:
        from passes.apply_tuning import ApplyTuningPass

        return ApplyTuningPass

    return {
        "sofa-bind-target": get_bind_target,
        "sofa-apply-tuning": get_apply_tuning,
        "sofa-separate-stage-tiling": get_separate_stage_tiling,
        "sofa-preprocess-weights": get_preprocess_weights,
        "sofa-coordinated-tiling": get_coordinated_tiling,
        "sofa-lower-to-isa": get_lower_to_isa,
    }
