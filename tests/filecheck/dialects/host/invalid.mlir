// RUN: sofa-opt %s --split-input-file --verify-diagnostics | filecheck %s

func.func @unknown_op(%a: tensor<2xf32>) {
  %b = host.onnx "TopK"(%a) : (tensor<2xf32>) -> tensor<2xf32>
  func.return
}
// CHECK: the host cannot run ONNX operator 'TopK' (no numpy implementation)

// -----

func.func @operand_count(%a: tensor<2xf32>) {
  %b = host.onnx "MatMul"(%a) : (tensor<2xf32>) -> tensor<2xf32>
  func.return
}
// CHECK: host.onnx 'MatMul' takes

// -----

func.func @missing_attribute(%a: tensor<2x3xf32>) {
  %b = host.onnx "Concat"(%a, %a) : (tensor<2x3xf32>, tensor<2x3xf32>) -> tensor<4x3xf32>
  func.return
}
// CHECK: host.onnx 'Concat' needs attribute(s) axis

// -----

func.func @dynamic_shape(%a: tensor<?x2xf32>) {
  %b = host.onnx "Relu"(%a) : (tensor<?x2xf32>) -> tensor<?x2xf32>
  func.return
}
// CHECK: host.onnx 'Relu' needs static shapes, got tensor<?x2xf32>

// -----

func.func @softmax_int(%a: tensor<2xi32>) {
  %b = host.onnx "Softmax"(%a) {axis = -1 : i64} : (tensor<2xi32>) -> tensor<2xi32>
  func.return
}
// CHECK: host.onnx 'Softmax' needs a float operand, got tensor<2xi32>

// -----

func.func @constant_type() {
  %c = "host.constant"() <{value = dense<1.0> : tensor<2xf32>}> : () -> tensor<3xf32>
  func.return
}
// CHECK: result type tensor<3xf32> differs from the value's type tensor<2xf32>


// -----

func.func @element_types(%a: tensor<2x3xi1>, %b: tensor<3x2xf32>) {
  %c = host.onnx "MatMul"(%a, %b) : (tensor<2x3xi1>, tensor<3x2xf32>) -> tensor<2x2xf32>
  func.return
}
// CHECK: host.onnx 'MatMul' needs one element type for every operand and result, got i1, f32 -> f32

// -----

func.func @where_condition(%a: tensor<2xf32>) {
  %c = host.onnx "Where"(%a, %a, %a) : (tensor<2xf32>, tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  func.return
}
// CHECK: host.onnx 'Where' needs an i1 condition and one data type, got f32, f32, f32 -> f32
