# RUN: %sofa-as %s -o %t.sofa
# RUN: %sofa-objdump %t.sofa --source > %t.s
# RUN: %sofa-as %t.s -o %t2.sofa
# RUN: cmp %t.sofa %t2.sofa
# RUN: %sofa-objdump %t2.sofa --source | diff %t.s -
# RUN: %sofa-objdump %t.sofa --source | filecheck %s --check-prefix=SRC
# RUN: %sofa-objdump %t.sofa | filecheck %s --check-prefix=LIST
# RUN: %sofa-objdump %t.sofa --json | filecheck %s --check-prefix=JSON
# RUN: %sofa-func %t.sofa | filecheck %s --check-prefix=EXEC
# RUN: %sofa-as %s -o %t3.sofa --target-hash 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
# RUN: %sofa-objdump %t3.sofa | filecheck %s --check-prefix=HASH

# Copy four f32 constants from the DRAM image to the output, twice, in a loop.
.symbol c const f32 [4] @256
.symbol y output f32 [2,4] @512
.data 256 0000803f000000400000404000008040
    set rd=r1, imm=0          # output row offset
    loop count=2, body=3
      dma.load dst=temp[r0+0], src=dram[r0+256], rows=1, row_bytes=16, src_stride=16 ; signal=0b1
      dma.store src=temp[r0+0], dst=dram[r1+512], rows=1, row_bytes=16, dst_stride=16 ; wait=0b1
      addi rd=r1, rs=r1, imm=16
    halt

# SRC:      .config 0000000000000000000000000000000000000000000000000000000000000000
# SRC-NEXT: .dram 4096
# SRC-NEXT: .symbol c const f32 [4] @256
# SRC-NEXT: .symbol y output f32 [2,4] @512
# SRC-NEXT: .data 256 0000803f000000400000404000008040
# SRC-NEXT: set rd=r1, imm=0
# SRC-NEXT: loop count=2, body=3
# SRC-NEXT:   dma.load dst=temp[r0+0], src=dram[r0+256], rows=1, row_bytes=16, src_stride=16 ; signal=0b1
# SRC-NEXT:   dma.store src=temp[r0+0], dst=dram[r1+512], rows=1, row_bytes=16, dst_stride=16 ; wait=0b1
# SRC-NEXT:   addi rd=r1, rs=r1, imm=16
# SRC-NEXT: halt

# LIST: magic SOFA, version 2, word 32 bytes
# LIST: code        6 instructions
# LIST: symbols:
# LIST-NEXT: const  c                f32  4              @0x00000100 16 bytes
# LIST-NEXT: output y                f32  2x4            @0x00000200 32 bytes
# LIST: code:
# LIST-NEXT:      0:  set rd=r1, imm=0
# LIST-NEXT:      1:  loop count=2, body=3
# LIST-NEXT:      2:    dma.load

# JSON: "config_hash": "0000000000000000000000000000000000000000000000000000000000000000"
# JSON: "op": "dma.store",
# JSON-NEXT: "unit": "dma_store",

# EXEC: instructions executed: 9
# EXEC-NEXT: output y: float32 [2, 4] sum=20

# HASH: config hash 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
