// Test kernel (tests/vulkan_backend_test.cpp): touches `count` uints starting
// at element `first` of a large argument: data[i] = data[i] * 3 + i.
// Arguments: read_write(data, first + count), uint first, uint count.
// Used with a 160 MiB argument, above lavapipe's 128 MiB maxStorageBufferRange.
#version 460
#extension GL_EXT_buffer_reference : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    uints data;
    uint first;
    uint count;
};

void main() {
    uint k = gl_GlobalInvocationID.x;
    if (k >= count) return;
    uint i = first + k;
    data.v[i] = data.v[i] * 3u + i;
}
