// out[i] = (i * 2654435761) ^ seed for i < n and i % stride == 0; the other
// words of the range are not touched. Model test.
__kernel void test_model_fill(__global uint* out, uint n, uint seed, uint stride) {
    uint i = (uint)get_global_id(0);
    if (i < n && i % stride == 0u) out[i] = (i * 2654435761u) ^ seed;
}
