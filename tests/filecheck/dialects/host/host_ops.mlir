// RUN: sofa-opt %s | sofa-opt | filecheck %s
// RUN: sofa-opt %s --print-op-generic | sofa-opt | filecheck %s
// RUN: sofa-opt %s --print-op-generic | %mlir-check | filecheck %s --check-prefix=MLIR
// RUN: sofa-run-ir %s --print | filecheck %s --check-prefix=EXEC

// MLIR: MLIR-OK

func.func @main() -> tensor<2x2xf32> {
  %a = host.constant dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>
  %b = host.onnx "MatMul"(%a, %a) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
  %t = host.onnx "Transpose"(%b) {perm = array<i64: 1, 0>} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  %s = host.onnx "Softmax"(%t) {axis = -1 : i64} : (tensor<2x2xf32>) -> tensor<2x2xf32>
  func.return %t : tensor<2x2xf32>
}

// CHECK: %a = host.constant dense<{{\[\[}}1.000000e+00, 2.000000e+00], [3.000000e+00, 4.000000e+00]]> : tensor<2x2xf32>
// CHECK: %b = host.onnx "MatMul"(%a, %a) : (tensor<2x2xf32>, tensor<2x2xf32>) -> tensor<2x2xf32>
// CHECK: %t = host.onnx "Transpose"(%b) {perm = array<i64: 1, 0>} : (tensor<2x2xf32>) -> tensor<2x2xf32>
// CHECK: %s = host.onnx "Softmax"(%t) {axis = -1 : i64} : (tensor<2x2xf32>) -> tensor<2x2xf32>

// [[1,2],[3,4]]^2 = [[7,10],[15,22]], transposed:
// EXEC: result[0]: (2, 2) float32
// EXEC-NEXT: {{\[\[}} 7. 15.]
// EXEC-NEXT: [10. 22.]]
