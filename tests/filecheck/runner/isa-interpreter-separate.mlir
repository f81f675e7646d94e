// The separate-stage baseline kernel (A-hat spilled to DRAM, `topk.mask` over whole rows,
// FlashAttention-2 tiles) runs op by op on the `sofa_isa` IR interpreter
// (`sofa-run-ir --kernels interpreter`): bit-identical to `sofa-run-ir` (the binary simulator)
// and within rtol 1e-3 of the `sofa`-dialect interpreter on the tiled IR. (1e-6 with the fp32
// datapath: the 16-bit datapath rounds P to fp16 relative to each tile's maximum, so two tilings
// of the same selection differ at fp16 level, unit roundoff 4.9e-4; 1.7e-4 measured.)
// RUN: sofa-opt %s -p 'sofa-separate-stage-tiling{keep=0.25 tile=32}' -o %t.tiled.mlir
// RUN: sofa-run-ir %t.tiled.mlir --random-inputs 5 --output %t.tiled.npz
// RUN: sofa-opt %t.tiled.mlir -p 'sofa-lower-to-isa{pipeline=separate attention=fa2 rass=false}' -o %t.isa.mlir
// RUN: sofa-run-ir %t.isa.mlir --kernels interpreter --random-inputs 5 --output %t.ir.npz | filecheck %s --check-prefix=IR
// RUN: sofa-run-ir %t.isa.mlir --random-inputs 5 --output %t.sim.npz
// RUN: %python %S/../../tools/compare_npz.py %t.ir.npz result0 %t.sim.npz result0 --exact | filecheck %s --check-prefix=EXACT
// RUN: %python %S/../../tools/compare_npz.py %t.ir.npz result0 %t.tiled.npz result0 --rtol 1e-3 | filecheck %s --check-prefix=CLOSE

// Causal GQA: 2 query heads share one KV head; 40 queries see at most keys 0..39 of 70.
func.func @main(%q: tensor<1x2x40x8xf32>, %k: tensor<1x1x70x8xf32>, %v: tensor<1x1x70x4xf32>) -> tensor<1x2x40x4xf32> {
  %o = sofa.attention %q, %k, %v scale 0.25 heads 2 / 1 causal : tensor<1x2x40x8xf32>, tensor<1x1x70x8xf32>, tensor<1x1x70x4xf32> -> tensor<1x2x40x4xf32>
  func.return %o : tensor<1x2x40x4xf32>
}

// IR: kernel attn0: {{[0-9]+}} instructions: addi barrier dlzs.score dma.load dma.store fa2.step halt loop post sads set sufa.init sufa.norm topk.mask{{$}}
// IR-NEXT: result[0]: (1, 2, 40, 4) float32{{$}}

// EXACT: bit-identical: 320 elements
// CLOSE: max relative error
