// out[i] = lcg^rounds(i) for i < n: a kernel that takes a while before it writes.
__kernel void test_slow_fill(__global uint* out, uint n, uint rounds) {
    uint i = (uint)get_global_id(0);
    if (i >= n) return;
    uint v = i;
    for (uint r = 0; r < rounds; ++r) v = v * 1664525u + 1013904223u;
    out[i] = v;
}
