# RUN: %sofa-as %s -o %t.sofa
# RUN: not %sofa-func %t.sofa 2>&1 | filecheck %s
# Temp SRAM is 28 KiB = 28672 bytes; this load needs [28000, 29024).
    dma.load dst=temp[r0+28000], src=dram[r0+0], rows=16, row_bytes=64, src_stride=64
    halt
# CHECK: trap at pc=0 (dma.load dst=temp[r0+28000], {{.*}}): SRAM overflow: dst needs temp[28000:29024] but temp holds 28672 bytes
