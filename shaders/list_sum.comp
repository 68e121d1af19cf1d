// list_sum: sums[l] = the values of list l, walked through usm pointers.
// Arguments: usm::any, read(heads, lists), write(sums, lists), uint lists.
// The nodes are not declared: the kernel follows the pointers stored in
// them through the page table (usm.glsl), and a node whose page the device
// does not hold yet is a device fault that usm serves before replaying the
// kernel (it is launched usm::replayable: running it again is harmless).
#version 460
#include "usm.glsl"

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 8) buffer node { uint64_t next; uint value; uint list; };
layout(buffer_reference, std430, buffer_reference_align = 8) readonly buffer ptrs { uint64_t v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    usm_space space;
    ptrs heads;
    uints sums;
    uint lists;
};

void main() {
    uint l = gl_GlobalInvocationID.x;
    if (l >= lists) return;
    uint sum = 0u;
    uint64_t p = heads.v[l];
    for (uint steps = 0u; p != 0ul && steps < 100000u; ++steps) {
        node n = node(usm_translate(space, p, 16u, USM_READ));
        if (uint64_t(n) == 0ul) return;  // a fault: the kernel runs again once usm served it
        sum += n.value;
        p = n.next;
    }
    sums.v[l] = sum;
}
