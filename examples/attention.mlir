// SOFA attention on a 2-head GQA layer (4 query heads share 2 KV heads).
// `sofa-run-ir examples/attention.mlir --random-inputs 0 --print` runs it.
func.func @main(%q: tensor<1x4x256x64xf32>, %k: tensor<1x2x256x64xf32>, %v: tensor<1x2x256x64xf32>) -> tensor<1x4x256x64xf32> {
  %out = sofa.attention %q, %k, %v scale 0.125 heads 4 / 2 causal sparsity <keep = 0.25, tile = 64, radius = 8.0, predictor = "dlzs"> : tensor<1x4x256x64xf32>, tensor<1x2x256x64xf32>, tensor<1x2x256x64xf32> -> tensor<1x4x256x64xf32>
  func.return %out : tensor<1x4x256x64xf32>
}
