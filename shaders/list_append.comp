// list_append: appends node fresh + 16 * l to the end of list l.
// Arguments: usm::any, read(heads, lists), uint64 fresh (a usm address),
// uint lists. Idempotent, so it may be launched usm::replayable: the new
// node is written in full first, and a list whose last node already points
// at it is left alone.
#version 460
#include "usm.glsl"

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer ptrs { uint64_t v[]; };

layout(push_constant, std430) uniform args {
    usm_space space;
    ptrs heads;
    uint64_t fresh;
    uint lists;
};

void main() {
    uint l = gl_GlobalInvocationID.x;
    if (l >= lists) return;
    uint64_t added = fresh + 16ul * l;
    // node layout: next (8 bytes), value, list
    if (!usm_store_ptr(space, added, 0ul)) return;
    if (!usm_store_uint(space, added + 8ul, 1000u + l)) return;
    if (!usm_store_uint(space, added + 12ul, l)) return;
    uint64_t p = heads.v[l];
    for (uint steps = 0u; p != 0ul && steps < 100000u; ++steps) {
        uint64_t at = usm_translate(space, p, 8u, USM_READ);
        if (at == 0ul) return;  // a fault: the kernel runs again once usm served it
        uint64_t next = usm_ptr_ref(at).value;
        if (next == 0ul) {
            usm_store_ptr(space, p, added);
            return;
        }
        if (next == added) return;  // appended by an earlier run
        p = next;
    }
}
