// tree_find: results[i] = the value under key queries[i] in a binary search
// tree, or 0xffffffff (the OpenCL C twin of tree_find.comp). Launched
// usm::replayable with usm::any, read(queries, count), write(results,
// count), ulong root, uint count.
#include "usm.cl"

struct tree_node {
    ulong left;
    ulong right;
    uint key;
    uint value;
};

__kernel void tree_find(__global usm_space* space, __global const uint* queries, __global uint* results, ulong root,
                        uint count) {
    uint i = get_global_id(0);
    if (i >= count) return;
    uint key = queries[i];
    uint found = 0xffffffffu;
    ulong p = root;
    for (uint depth = 0; p != 0 && depth < 256u; ++depth) {
        __global const struct tree_node* n = (__global const struct tree_node*)usm_translate(space, p, 24, USM_READ);
        if (n == 0) return;  // a fault: the kernel runs again once usm served it
        if (key == n->key) {
            found = n->value;
            break;
        }
        p = key < n->key ? n->left : n->right;
    }
    results[i] = found;
}
