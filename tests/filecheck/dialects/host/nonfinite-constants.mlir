// Non-finite constants (mask biases) print as hex bit patterns and re-parse to the same values.
// RUN: sofa-opt %s | filecheck %s
// RUN: sofa-run-ir %s --print | filecheck %s --check-prefix=EXEC
// RUN: sofa-opt %s -o %t.mlir
// RUN: sofa-run-ir %t.mlir --print | filecheck %s --check-prefix=EXEC

func.func @main() -> (tensor<3xf32>, tensor<2xf16>) {
  %c = host.constant dense<[0xFF800000, 1.5, 0x7F800000]> : tensor<3xf32>
  %h = host.constant dense<[0xFC00, 0x3C00]> : tensor<2xf16>
  func.return %c, %h : tensor<3xf32>, tensor<2xf16>
}

// CHECK: %c = host.constant dense<[0xff800000, 1.500000e+00, 0x7f800000]> : tensor<3xf32>
// CHECK: %h = host.constant dense<[0xfc00, 1.000000e+00]> : tensor<2xf16>

// EXEC: result[0]: (3,) float32
// EXEC-NEXT: [-inf  1.5  inf]
// EXEC: result[1]: (2,) float16
// EXEC-NEXT: [-inf   1.]
