// Parse errors read as MLIR's: `file:line:col: error: message` on one line, then the
// source line and a caret under the culprit; the same in every tool that reads MLIR.
// RUN: not sofa-opt %s 2>&1 | filecheck %s
// RUN: not sofa-run-ir %s 2>&1 | filecheck %s
// RUN: not sofa-opt %s -p sofa-coordinated-tiling 2>&1 | filecheck %s

func.func @main(%q: tensor<1x1x8x8xf32>) -> tensor<1x1x8x8xf32> {
  %x = sofa.attention %q, %q, %q scale 0.5 heads 1 / 1 sparsity <keep = 2.0, tile = 8, radius = 1.0, predictor = "dlzs"> : tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32>, tensor<1x1x8x8xf32> -> tensor<1x1x8x8xf32>
  func.return %x : tensor<1x1x8x8xf32>
}

// CHECK-NOT: Traceback
// CHECK: mlir-diagnostics.mlir:8:{{[0-9]+}}: error: {{.*}}keep
// CHECK-NEXT: {{^}}  %x = sofa.attention
// CHECK-NEXT: {{^ +\^+$}}
// CHECK-NOT: Traceback
