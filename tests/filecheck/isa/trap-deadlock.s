# RUN: %sofa-as %s -o %t.sofa
# RUN: not %sofa-func %t.sofa 2>&1 | filecheck %s
# s2 is only ever signalled by the SU-FA unit itself: no other unit can release it.
    sufa.init lanes=4, vdepth=8 ; wait=0b100
    sufa.norm out=temp[r0+0], lanes=4, vdepth=8 ; signal=0b100
    halt
# CHECK: trap at pc=0 (sufa.init lanes=4, vdepth=8 ; wait=0b100): token deadlock: waits on s2 whose count is 0 and only its own unit signals it
