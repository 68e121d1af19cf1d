// out[i] = in[i] for i < n (the ranges do not overlap). Args: read uint in,
// write or read_write uint out, uint n. Model test.
#version 460
#extension GL_EXT_buffer_reference : require
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer uints_in { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints_out { uint v[]; };
layout(push_constant, std430) uniform args { uints_in in_; uints_out out_; uint n; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) out_.v[i] = in_.v[i];
}
