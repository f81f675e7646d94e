// RUN: sofa-opt %s --split-input-file --parsing-diagnostics | filecheck %s

func.func @constant_not_dense() {
  %c = host.constant 1.0 : f32
  func.return
}
// CHECK:      invalid-syntax.mlir:4:22
// CHECK-NEXT:   %c = host.constant 1.0 : f32
// CHECK-NEXT:                      ^^^^^^^^^
// CHECK-NEXT:                      host.constant expects a dense elements attribute, got 1.000000e+00 : f32
