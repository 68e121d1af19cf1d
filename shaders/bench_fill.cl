// bench: out[i] = (i * 2654435761) ^ seed for i < n, grid-stride.
__kernel void bench_fill(__global uint* out, uint n, uint seed) {
    uint stride = (uint)get_global_size(0);
    for (uint i = (uint)get_global_id(0); i < n; i += stride) out[i] = (i * 2654435761u) ^ seed;
}
