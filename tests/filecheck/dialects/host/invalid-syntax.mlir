// RUN: sofa-opt %s --split-input-file --parsing-diagnostics | filecheck %s

func.func @constant_not_dense() {
  %c = host.constant 1.0 : f32
  func.return
}
// MLIR's one-line form: file:line:col: error: message, then the line and a caret.
// CHECK:      invalid-syntax.mlir:4:22: error: host.constant expects a dense elements attribute, got 1.000000e+00 : f32
// CHECK-NEXT:   %c = host.constant 1.0 : f32
// CHECK-NEXT:                      ^^^^^^^^^
