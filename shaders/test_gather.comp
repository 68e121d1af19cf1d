// test_gather: out[i] = the uint at usm address where[i], loaded through the
// page table. Arguments: usm::any or usm::declared, read(where, n),
// write(out, n), uint n.
#version 460
#include "usm.glsl"

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer ptrs { uint64_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    usm_space space;
    ptrs where;
    uints out_values;
    uint n;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) out_values.v[i] = usm_load_uint(space, where.v[i]);
}
