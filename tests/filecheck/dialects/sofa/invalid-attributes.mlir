// RUN: sofa-opt %s --split-input-file --parsing-diagnostics | filecheck %s

func.func @unknown_target_key() attributes {t = #sofa.target<lanes = 64, sram = 3>} {
  func.return
}
// CHECK: unknown target parameter(s) ['sram']

// -----

func.func @bad_target_value() attributes {t = #sofa.target<lanes = 0>} {
  func.return
}
// CHECK: target parameter 'lanes' must be a positive number, got 0

// -----

func.func @sparsity_missing_tile(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 sparsity <keep = 0.5> : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: sparsity parameter 'tile' is required

// -----

func.func @sparsity_unknown(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 sparsity <keep = 0.5, tile = 4, topk = 3> : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: unknown sparsity parameter(s) ['topk']; expected keep, tile, radius, predictor

// -----

func.func @keep_zero(%q: tensor<1x1x8x4xf32>, %k: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %k, %k scale 0.5 heads 1 / 1 sparsity <keep = 0.0, tile = 4> : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: sparsity keep ratio must satisfy 0 < k <= 1, got 0.0

// -----

func.func @keep_above_one(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 sparsity <keep = 1.5, tile = 4> : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: sparsity keep ratio must satisfy 0 < k <= 1, got 1.5

// -----

func.func @tile_zero(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 sparsity <keep = 0.5, tile = 0> : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: sparsity tile (Bc) must be at least 1, got 0

// -----

func.func @bad_radius(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 sparsity <keep = 0.5, tile = 4, radius = -1.0> : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: sparsity radius must be positive (or inf), got -1.0

// -----

func.func @bad_predictor(%q: tensor<1x1x8x4xf32>) -> tensor<1x1x8x4xf32> {
  %0 = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 sparsity <keep = 0.5, tile = 4, predictor = "magic"> : tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32>, tensor<1x1x8x4xf32> -> tensor<1x1x8x4xf32>
  func.return %0 : tensor<1x1x8x4xf32>
}
// CHECK: unknown predictor 'magic'; expected one of dlzs, mul4, exact
