// RUN: sofa-opt %s | sofa-opt | filecheck %s
// RUN: sofa-opt %s --print-op-generic | sofa-opt | filecheck %s
// RUN: sofa-opt %s --print-op-generic | filecheck %s --check-prefix=GENERIC
// RUN: sofa-opt %s --print-op-generic | %mlir-check | filecheck %s --check-prefix=MLIR

// MLIR: MLIR-OK

sofa_isa.program {config_hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", dram_bytes = 1048576 : i64, symbols = [#sofa_isa.symbol<"q", input, f16, [128, 64], 0, 16384>, #sofa_isa.symbol<"o", output, f32, [128, 32], 16384, 16384>], segments = [#sofa_isa.segment<65536, "0102030408">]} {
  sofa_isa.post signal = 96
  sofa_isa.set rd = r1, imm = -4
  sofa_isa.addi rd = r2, rs = r1, imm = 4096
  sofa_isa.loop count = 4 {
    sofa_isa.dma_load dst = temp[r0 + 0], src = dram[r6 + 65536], rows = 64, row_bytes = 128, src_stride = 128, wait = 32, signal = 1
    sofa_isa.dma_prefetch dst = temp[r0 + 4096], src = dram[r6 + 73728], rows = 64, row_bytes = 128, src_stride = 128, wait = 32, signal = 1
    sofa_isa.dma_gather dst = token[r0 + 49152], src = dram[r0 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, row_bytes = 256, src_stride = 256
    sofa_isa.dma_store src = token[r0 + 0], dst = dram[r4 + 16384], rows = 128, row_bytes = 128, dst_stride = 128
    sofa_isa.dlzs_key x = token[r0 + 0], xexp = token[r0 + 8192], w = weight[r0 + 0], out = temp[r0 + 0], rows = 64, hidden = 128, cols = 64, base = -9
    sofa_isa.dlzs_score q = token[r1 + 4], khat = temp[r0 + 0], out = temp[r0 + 8192], lanes = 128, keys = 64, depth = 64, wait = 1, signal = 2
    sofa_isa.sads scores = temp[r0 + 8192], out = token[r0 + 73728], lanes = 128, keys = 64, m = 16, radius = 2.5, key_base = r5, query_base = r3, kv_len = 200, causal = 1
    sofa_isa.rass idx = token[r0 + 73728], out = temp[r0 + 24576], lanes = 128, m = 16
    sofa_isa.kvgen x = token[r0 + 0], w = weight[r0 + 0], out = temp[r0 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, hidden = 128, cols = 64, dtype = f16, bias = weight[r0 + 0], mode = 0
    sofa_isa.kvmark idx = token[r0 + 73728], bitmap = weight[r0 + 8192], lanes = 128, m = 16, keys = 4096
    sofa_isa.kvlist bitmap = weight[r0 + 8192], out = temp[r0 + 24576], key_base = r5, window = 64, clear = 1
    sofa_isa.dma_scatter src = temp[r0 + 0], dst = dram[r7 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, row_bytes = 256, dst_stride = 256
    sofa_isa.kvgen x = token[r0 + 0], w = weight[r0 + 0], out = temp[r0 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, hidden = 64, cols = 64, dtype = f32, bias = weight[r0 + 4096], mode = 2
    sofa_isa.sufa_init lanes = 128, vdepth = 32
    sofa_isa.sufa_step q = token[r0 + 0], k = token[r0 + 49152], v = token[r0 + 65536], idx = token[r0 + 73728], key_base = r5, lanes = 128, m = 16, window = 64, depth = 64, vdepth = 32, scale = 0.125, dtype = f32, wait = 16, signal = 64
    sofa_isa.sufa_norm out = token[r0 + 81920], lanes = 128, vdepth = 32
  }
  sofa_isa.loopr count = r2 {
    sofa_isa.addi rd = r3, rs = r3, imm = 1
  }
  sofa_isa.barrier
  sofa_isa.halt
}

// CHECK:      sofa_isa.program {config_hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", dram_bytes = 1048576 : i64, symbols = [#sofa_isa.symbol<"q", input, f16, [128, 64], 0, 16384>, #sofa_isa.symbol<"o", output, f32, [128, 32], 16384, 16384>], segments = [#sofa_isa.segment<65536, "0102030408">]} {
// CHECK-NEXT:   sofa_isa.post signal = 96
// CHECK-NEXT:   sofa_isa.set rd = r1, imm = -4
// CHECK-NEXT:   sofa_isa.addi rd = r2, rs = r1, imm = 4096
// CHECK-NEXT:   sofa_isa.loop count = 4 {
// CHECK-NEXT:     sofa_isa.dma_load dst = temp[r0 + 0], src = dram[r6 + 65536], rows = 64, row_bytes = 128, src_stride = 128, wait = 32, signal = 1
// CHECK-NEXT:     sofa_isa.dma_prefetch dst = temp[r0 + 4096], src = dram[r6 + 73728], rows = 64, row_bytes = 128, src_stride = 128, wait = 32, signal = 1
// CHECK-NEXT:     sofa_isa.dma_gather dst = token[r0 + 49152], src = dram[r0 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, row_bytes = 256, src_stride = 256
// CHECK-NEXT:     sofa_isa.dma_store src = token[r0 + 0], dst = dram[r4 + 16384], rows = 128, row_bytes = 128, dst_stride = 128
// CHECK-NEXT:     sofa_isa.dlzs_key x = token[r0 + 0], xexp = token[r0 + 8192], w = weight[r0 + 0], out = temp[r0 + 0], rows = 64, hidden = 128, cols = 64, base = -9
// CHECK-NEXT:     sofa_isa.dlzs_score q = token[r1 + 4], khat = temp[r0 + 0], out = temp[r0 + 8192], lanes = 128, keys = 64, depth = 64, wait = 1, signal = 2
// CHECK-NEXT:     sofa_isa.sads scores = temp[r0 + 8192], out = token[r0 + 73728], lanes = 128, keys = 64, m = 16, radius = 2.5, key_base = r5, query_base = r3, kv_len = 200, causal = 1
// CHECK-NEXT:     sofa_isa.rass idx = token[r0 + 73728], out = temp[r0 + 24576], lanes = 128, m = 16
// CHECK-NEXT:     sofa_isa.kvgen x = token[r0 + 0], w = weight[r0 + 0], out = temp[r0 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, hidden = 128, cols = 64, dtype = f16, bias = weight[r0 + 0], mode = 0
// CHECK-NEXT:     sofa_isa.kvmark idx = token[r0 + 73728], bitmap = weight[r0 + 8192], lanes = 128, m = 16, keys = 4096
// CHECK-NEXT:     sofa_isa.kvlist bitmap = weight[r0 + 8192], out = temp[r0 + 24576], key_base = r5, window = 64, clear = 1
// CHECK-NEXT:     sofa_isa.dma_scatter src = temp[r0 + 0], dst = dram[r7 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, row_bytes = 256, dst_stride = 256
// CHECK-NEXT:     sofa_isa.kvgen x = token[r0 + 0], w = weight[r0 + 0], out = temp[r0 + 0], list = temp[r0 + 24576], key_base = r5, window = 64, hidden = 64, cols = 64, dtype = f32, bias = weight[r0 + 4096], mode = 2
// CHECK-NEXT:     sofa_isa.sufa_init lanes = 128, vdepth = 32
// CHECK-NEXT:     sofa_isa.sufa_step q = token[r0 + 0], k = token[r0 + 49152], v = token[r0 + 65536], idx = token[r0 + 73728], key_base = r5, lanes = 128, m = 16, window = 64, depth = 64, vdepth = 32, scale = 0.125, dtype = f32, wait = 16, signal = 64
// CHECK-NEXT:     sofa_isa.sufa_norm out = token[r0 + 81920], lanes = 128, vdepth = 32
// CHECK-NEXT:   }
// CHECK-NEXT:   sofa_isa.loopr count = r2 {
// CHECK-NEXT:     sofa_isa.addi rd = r3, rs = r3, imm = 1
// CHECK-NEXT:   }
// CHECK-NEXT:   sofa_isa.barrier
// CHECK-NEXT:   sofa_isa.halt
// CHECK-NEXT: }

// GENERIC: "sofa_isa.program"() <{config_hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", dram_bytes = 1048576 : i64
// GENERIC: "sofa_isa.loop"() <{count = 4 : i64}> ({
// GENERIC: "sofa_isa.dlzs_score"() <{q = #sofa_isa.sram<token, r1 + 4>, khat = #sofa_isa.sram<temp, r0 + 0>, out = #sofa_isa.sram<temp, r0 + 8192>, lanes = 128 : i64, keys = 64 : i64, depth = 64 : i64, wait = 1 : i64, signal = 2 : i64}> : () -> ()
// GENERIC: "sofa_isa.sads"() <{{.*}}radius = 2.500000e+00 : f32, key_base = 5 : i64

// A run-time additive mask's instructions and the score-cap register.
sofa_isa.program {config_hash = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", dram_bytes = 4096 : i64, symbols = [], segments = []} {
  sofa_isa.softcap cap = 30.0
  sofa_isa.sads_bias bias = weight[r0 + 0], scores = temp[r0 + 1024], out = temp[r0 + 7424], lanes = 100, keys = 32, m = 32, radius = inf, key_base = r5, scale = 0.25, wait = 2, signal = 36
  sofa_isa.sufa_bias bias = weight[r0 + 0], q = token[r0 + 0], k = token[r0 + 9600], v = token[r0 + 10624], idx = temp[r0 + 7424], key_base = r5, lanes = 100, m = 32, window = 32, depth = 16, vdepth = 16, scale = 0.25, dtype = f16, wait = 16, signal = 64
  sofa_isa.halt
}

// CHECK:      sofa_isa.softcap cap = 30.0
// CHECK-NEXT: sofa_isa.sads_bias bias = weight[r0 + 0], scores = temp[r0 + 1024], out = temp[r0 + 7424], lanes = 100, keys = 32, m = 32, radius = inf, key_base = r5, scale = 0.25, wait = 2, signal = 36
// CHECK-NEXT: sofa_isa.sufa_bias bias = weight[r0 + 0], q = token[r0 + 0], k = token[r0 + 9600], v = token[r0 + 10624], idx = temp[r0 + 7424], key_base = r5, lanes = 100, m = 32, window = 32, depth = 16, vdepth = 16, scale = 0.25, dtype = f16, wait = 16, signal = 64
// GENERIC: "sofa_isa.softcap"() <{cap = 3.000000e+01 : f32, wait = 0 : i64, signal = 0 : i64}>
