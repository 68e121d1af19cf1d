// test_scatter: stores values[i] at usm address where[i] through the page
// table, and sets done[i] to 1 when the store was allowed.
// Arguments: usm::any or usm::declared, read(where, n), read(values, n),
// write(done, n), then any ranges the stores may hit (declared or not),
// uint n. Here: one extra read_write range.
#version 460
#include "usm.glsl"

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer ptrs { uint64_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_uints { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    usm_space space;
    ptrs where;
    const_uints values;
    uints done;
    uints target;
    uint n;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i < n) done.v[i] = usm_store_uint(space, where.v[i], values.v[i]) ? 1u : 0u;
}
