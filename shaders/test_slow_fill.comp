// out[i] = lcg^rounds(i) for i < n: a kernel that takes a while before it
// writes. Args: write uint out, uint n, uint rounds.
#version 460
#extension GL_EXT_buffer_reference : require
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430, buffer_reference_align = 4) buffer uints { uint v[]; };
layout(push_constant, std430) uniform args { uints out_; uint n; uint rounds; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= n) return;
    uint v = i;
    for (uint r = 0u; r < rounds; ++r) v = v * 1664525u + 1013904223u;
    out_.v[i] = v;
}
