// tree_find: results[i] = the value stored under key queries[i] in a binary
// search tree the host built, or 0xffffffff when the key is absent.
// Arguments: usm::any, read(queries, count), write(results, count),
// uint64 root (a usm address), uint count. Launched usm::replayable: the
// tree's nodes are reached through the page table (usm.glsl), and pages the
// device lacks are device faults served before the kernel runs again.
#version 460
#include "usm.glsl"

layout(local_size_x_id = 0) in;

layout(buffer_reference, std430, buffer_reference_align = 8) buffer tree_node {
    uint64_t left;
    uint64_t right;
    uint key;
    uint value;
};
layout(buffer_reference, std430, buffer_reference_align = 4) readonly buffer const_uints { uint v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly buffer uints { uint v[]; };

layout(push_constant, std430) uniform args {
    usm_space space;
    const_uints queries;
    uints results;
    uint64_t root;
    uint count;
};

void main() {
    uint i = gl_GlobalInvocationID.x;
    if (i >= count) return;
    uint key = queries.v[i];
    uint found = 0xffffffffu;
    uint64_t p = root;
    for (uint depth = 0u; p != 0ul && depth < 256u; ++depth) {
        tree_node n = tree_node(usm_translate(space, p, 24u, USM_READ));
        if (uint64_t(n) == 0ul) return;  // a fault: the kernel runs again once usm served it
        if (key == n.key) {
            found = n.value;
            break;
        }
        p = key < n.key ? n.left : n.right;
    }
    results.v[i] = found;
}
