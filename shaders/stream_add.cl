// stream_add: x[i] += k for i < n, one pass of a stream over a window of
// memory (the oversubscribe sample; usm-bench's oversubscribed streaming).
__kernel void stream_add(__global uint* x, uint n, uint k) {
    uint i = (uint)get_global_id(0);
    if (i < n) x[i] += k;
}
