// out[i] = in[i * stride + offset] + add for i < n: reads one thread's words
// out of pages other threads write too (tests/stress_test.cpp).
__kernel void test_stress_gather(__global const uint* in, __global uint* out, uint n, uint stride, uint offset,
                                 uint add) {
    uint i = (uint)get_global_id(0);
    if (i < n) out[i] = in[i * stride + offset] + add;
}
