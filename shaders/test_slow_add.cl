// Test kernel: out[i] = in[i] + lcg^rounds(i) for i < n, where
// lcg(v) = v * 1664525 + 1013904223 (mod 2^32). Reads `in` only at the end,
// after `rounds` iterations, so a launch takes as long as a test needs to
// catch a transfer that does not wait for it. Twin of test_slow_add.comp.
__kernel void test_slow_add(__global const uint* in, __global uint* out, uint n, uint rounds) {
    uint i = (uint)get_global_id(0);
    if (i >= n) return;
    uint v = i;
    for (uint r = 0; r < rounds; ++r) v = v * 1664525u + 1013904223u;
    out[i] = in[i] + v;
}
