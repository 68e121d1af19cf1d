// stream_add: x[i] += k for i < n, one pass of a stream over a window of
// memory (the oversubscribe sample; usm-bench's oversubscribed streaming).
// Args: read_write uint x, uint n, uint k.
#version 460
#extension GL_EXT_buffer_reference : require
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430, buffer_reference_align = 4) buffer uints { uint v[]; };
layout(push_constant, std430) uniform args { uints x; uint n; uint k; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) x.v[i] += k;
}
