// The fused `sofa.attention` and its spelled-out stages give the same numbers.
// RUN: sofa-run-ir %s --symbol fused --random-inputs 7 --print | filecheck %s
// RUN: sofa-run-ir %s --symbol staged --random-inputs 7 --print | filecheck %s
// With keep = 1 the pipeline is exact attention (checked against numpy in pytest);
// here keep = 0.5 so the selection matters.

func.func @fused(%q: tensor<1x1x4x4xf32>, %k: tensor<1x1x8x4xf32>, %v: tensor<1x1x8x2xf32>) -> tensor<1x1x4x2xf32> {
  %o = sofa.attention %q, %k, %v scale 0.5 heads 1 / 1 sparsity <keep = 0.5, tile = 4, radius = inf, predictor = "dlzs"> : tensor<1x1x4x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x2xf32> -> tensor<1x1x4x2xf32>
  func.return %o : tensor<1x1x4x2xf32>
}

func.func @staged(%q: tensor<1x1x4x4xf32>, %k: tensor<1x1x8x4xf32>, %v: tensor<1x1x8x2xf32>) -> tensor<1x1x4x2xf32> {
  %s = sofa.dlzs_score %q, %k : tensor<1x1x4x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x4x8xf16>
  %i = sofa.sads %s scale 0.5 sparsity <keep = 0.5, tile = 4, radius = inf, predictor = "dlzs"> : tensor<1x1x4x8xf16> -> tensor<1x1x4x2x2xi32>
  %o = sofa.sufa %q, %k, %v, %i scale 0.5 tile 4 : tensor<1x1x4x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x2xf32>, tensor<1x1x4x2x2xi32> -> tensor<1x1x4x2xf32>
  func.return %o : tensor<1x1x4x2xf32>
}

// CHECK:      result[0]: (1, 1, 4, 2) float32
// CHECK-NEXT: {{\[\[\[\[}} 0.134521  0.613281]
// CHECK-NEXT: [ 0.367188 -0.837891]
// CHECK-NEXT: [ 0.100647 -0.086792]
// CHECK-NEXT: [ 0.266357 -0.741699]]]]
