# RUN: %sofa-as %s -o %t.sofa
# RUN: %sofa-objdump %t.sofa | filecheck %s --check-prefix=DUMP
# RUN: not %sofa-func %t.sofa 2>&1 | filecheck %s
    barrier
    .word 0xee
    halt
# DUMP: 1:  .word 0x{{0+}}ee  # illegal opcode 0xee
# CHECK: trap at pc=1 (.word 0x{{0+}}ee): illegal instruction: illegal opcode 0xee
