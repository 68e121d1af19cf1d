// out[i] = (i * 2654435761) ^ seed for i < n and i % stride == 0; the other
// words of the range are not touched (declared usm::write: usm keeps them).
// Args: write uint out, uint n, uint seed, uint stride. Model test.
#version 460
#extension GL_EXT_buffer_reference : require
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };
layout(push_constant, std430) uniform args { uints out_; uint n; uint seed; uint stride; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n && i % stride == 0u) out_.v[i] = (i * 2654435761u) ^ seed;
}
