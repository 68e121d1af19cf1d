// x[i * stride + offset] += add for i < n: one thread's words of a page shared
// by several (tests/stress_test.cpp).
__kernel void test_stress_add(__global uint* x, uint n, uint stride, uint offset, uint add) {
    uint i = (uint)get_global_id(0);
    if (i < n) x[i * stride + offset] += add;
}
