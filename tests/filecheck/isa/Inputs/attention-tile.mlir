// The `sofa` dialect form of ../attention-tile.s (not a test on its own).
func.func @main(%q: tensor<1x1x128x16xf32>, %k: tensor<1x1x96x16xf32>, %v: tensor<1x1x96x8xf32>) -> tensor<1x1x128x8xf32> {
  %o = sofa.attention %q, %k, %v scale 0.25 heads 1 / 1 causal sparsity <keep = 0.25, tile = 32, radius = 4.0, predictor = "dlzs"> : tensor<1x1x128x16xf32>, tensor<1x1x96x16xf32>, tensor<1x1x96x8xf32> -> tensor<1x1x128x8xf32>
  func.return %o : tensor<1x1x128x8xf32>
}
