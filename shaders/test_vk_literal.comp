// Test kernel (tests/vulkan_backend_test.cpp) with a literal work-group size
// of 64: usm must read it from the SPIR-V and refuse any other group size.
// Arguments: write(data, n), uint n. Writes data[i] = 7 * i + 1.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x = 64) in;

layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    uints data;
    uint n;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) data.v[i] = 7u * i + 1u;
}
