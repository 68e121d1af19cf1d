// list_append: appends node fresh + 16 * l to the end of list l (the OpenCL
// C twin of list_append.comp). Idempotent: launched usm::replayable with
// usm::any, read(heads, lists), ulong fresh, uint lists.
#include "usm.cl"

__kernel void list_append(__global usm_space* space, __global const ulong* heads, ulong fresh, uint lists) {
    uint l = get_global_id(0);
    if (l >= lists) return;
    ulong added = fresh + 16 * (ulong)l;
    // node layout: next (8 bytes), value, list
    if (!usm_store_ptr(space, added, 0)) return;
    if (!usm_store_uint(space, added + 8, 1000u + l)) return;
    if (!usm_store_uint(space, added + 12, l)) return;
    ulong p = heads[l];
    for (uint steps = 0; p != 0 && steps < 100000u; ++steps) {
        __global const ulong* at = (__global const ulong*)usm_translate(space, p, 8, USM_READ);
        if (at == 0) return;  // a fault: the kernel runs again once usm served it
        ulong next = *at;
        if (next == 0) {
            usm_store_ptr(space, p, added);
            return;
        }
        if (next == added) return;  // appended by an earlier run
        p = next;
    }
}
