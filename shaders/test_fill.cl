// out[i] = (i * 2654435761) ^ seed for i < n.
__kernel void test_fill(__global uint* out, uint n, uint seed) {
    uint i = (uint)get_global_id(0);
    if (i < n) out[i] = (i * 2654435761u) ^ seed;
}
