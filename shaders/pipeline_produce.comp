// The pipeline sample's producer (Vulkan): one frame of a synthetic 16-bit
// signal, signal[i] = hash(i, frame) & 0xffff for i < n.
// Args: write uint signal, uint n, uint frame.
#version 460
#extension GL_EXT_buffer_reference : require
layout(local_size_x_id = 0) in;
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };
layout(push_constant, std430) uniform args { uints signal; uint n; uint frame; };
void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= n) return;
    uint h = (i ^ (frame * 0x9e3779b9u)) * 2654435761u;
    h ^= h >> 15;
    signal.v[i] = h & 0xffffu;
}
