// list_sum: sums[l] = the values of list l, walked through usm pointers
// (the OpenCL C twin of list_sum.comp). Launched usm::replayable with
// usm::any, read(heads, lists), write(sums, lists), uint lists.
#include "usm.cl"

struct node {
    ulong next;
    uint value;
    uint list;
};

__kernel void list_sum(__global usm_space* space, __global const ulong* heads, __global uint* sums, uint lists) {
    uint l = get_global_id(0);
    if (l >= lists) return;
    uint sum = 0;
    ulong p = heads[l];
    for (uint steps = 0; p != 0 && steps < 100000u; ++steps) {
        __global const struct node* n = (__global const struct node*)usm_translate(space, p, 16, USM_READ);
        if (n == 0) return;  // a fault: the kernel runs again once usm served it
        sum += n->value;
        p = n->next;
    }
    sums[l] = sum;
}
