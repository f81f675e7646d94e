# RUN: %sofa-as %s -o %t.sofa
# RUN: not %sofa-func %t.sofa 2>&1 | filecheck %s
    set rd=r2, imm=4000
    dma.load dst=temp[r0+0], src=dram[r2+64], rows=2, row_bytes=64, src_stride=64
    halt
# CHECK: trap at pc=1 (dma.load dst=temp[r0+0], src=dram[r2+64], rows=2, row_bytes=64, src_stride=64): src: DRAM range [4064, 4192) is outside DRAM [0, 4096)
