// x[i] = x[i] * mul + add for i < n (wrapping): a step whose order matters,
// so a chain of them across devices shows that each saw the last one's result.
__kernel void test_md_affine(__global uint* x, uint n, uint mul, uint add) {
    size_t i = get_global_id(0);
    if (i < n) x[i] = x[i] * mul + add;
}
