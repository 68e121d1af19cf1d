// Test kernel (tests/vulkan_backend_test.cpp) for push-constant packing: a
// pointer, a uint, a 64-bit value (8-byte aligned, so 4 bytes of padding
// before it), a float and a second pointer (8-byte aligned again). Invocation
// 0 echoes the values into `out` and marks `second`.
// Arguments: write(out, 4), uint a, uint64_t b, float c, write(second, 1).
#version 460
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    uints out_values;
    uint a;
    uint64_t b;
    float c;
    uints second;
};

void main() {
    if (gl_GlobalInvocationID.x != 0) return;
    out_values.v[0] = a;
    out_values.v[1] = uint(b);
    out_values.v[2] = uint(b >> 32);
    out_values.v[3] = floatBitsToUint(c);
    second.v[0] = 0xC0FFEEu;
}
