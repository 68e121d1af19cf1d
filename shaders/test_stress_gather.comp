// out[i] = in[i * stride + offset] + add for i < n: reads one thread's words
// out of pages other threads write too (tests/stress_test.cpp).
// Args: read uint in, write uint out, uint n, uint stride, uint offset, uint add.
#version 460
#extension GL_EXT_buffer_reference : require
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer uints_in { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer uints { uint v[]; };
layout(push_constant, std430) uniform args { uints_in in_; uints out_; uint n; uint stride; uint offset; uint add; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) out_.v[i] = in_.v[i * stride + offset] + add;
}
