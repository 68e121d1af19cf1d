// shaders/usm.cl - following usm pointers inside an OpenCL C kernel.
//
// The OpenCL C twin of usm.glsl. A launch that passes usm::any (or
// usm::declared) binds a `__global usm_space*` parameter: the device's page
// table and a log of faults. usm_translate turns a usm address (a usm::ptr's
// value, as stored in memory) into a device address after checking the
// device's permission for the page; an access the table does not allow
// touches nothing and is recorded as a device fault, which usm services
// after the kernel (replaying a usm::replayable kernel) or reports as
// errc::device_fault. Write `#include "usm.cl"` in a kernel's source:
// load_kernel puts this file there (docs/device-faults.md).
//
//     __kernel void sum(__global usm_space* space, ulong head, __global uint* out) {
//         __global struct node* n = (__global struct node*)usm_translate(space, head, 16, USM_READ);
//         if (n == 0) return;  // faulted: usm brings the page and replays
#ifndef USM_CL
#define USM_CL

#define USM_READ 1u
#define USM_WRITE 2u
#define USM_READ_WRITE 3u

#define USM_CHECKED 1u   /* check declared ranges to the byte (USM_CHECK) */
#define USM_ANYWHERE 2u  /* usm::any: every live page may be followed */

typedef struct {
    ulong begin;
    ulong end;
    uint access;
    uint reserved;
} usm_range;

typedef struct {
    ulong address;
    uint access;
    uint device;
} usm_fault_record;

typedef struct {
    ulong base;   /* usm address of the table's first page */
    ulong pages;  /* entries in the table */
    ulong table;  /* device address of entry 0; an entry is the page's device
                     address shifted left by 2, with USM_READ and USM_WRITE in
                     the low bits (0: the device holds no copy) */
    uint flags;
    uint range_count;
    uint fault_count;
    uint fault_capacity;
    uint device;
    uint reserved;
    usm_range ranges[16];
    /* fault records follow, at byte 432 */
} usm_space;

/* Records a fault at `address`; the access itself must then be skipped. */
void usm_fault(__global usm_space* s, ulong address, uint access) {
    uint slot = atomic_inc((volatile __global uint*)&s->fault_count);
    if (slot < s->fault_capacity) {
        __global usm_fault_record* records = (__global usm_fault_record*)((__global char*)s + 432);
        records[slot].address = address;
        records[slot].access = access;
        records[slot].device = s->device;
    }
}

/* True once any work-item of this launch recorded a fault: a kernel may
   stop early, since usm will run it again (or report the fault). */
bool usm_faulted(__global usm_space* s) { return *(volatile __global uint*)&s->fault_count != 0u; }

bool usm_in_declared(__global usm_space* s, ulong address, ulong end, uint access) {
    for (uint i = 0u; i < s->range_count; ++i)
        if (address >= s->ranges[i].begin && end <= s->ranges[i].end && (s->ranges[i].access & access) == access)
            return true;
    return false;
}

/* The device address of `bytes` (1 to 4096) at usm address `address`, for
   `access` (USM_READ, USM_WRITE or both); 0 after recording a fault. */
ulong usm_translate(__global usm_space* s, ulong address, uint bytes, uint access) {
    access = max(access, USM_READ); /* no access at all is checked as a read */
    ulong end = address + (ulong)max(bytes, 1u);
    if ((s->flags & USM_CHECKED) != 0u && (s->flags & USM_ANYWHERE) == 0u &&
        !usm_in_declared(s, address, end, access)) {
        usm_fault(s, address, access);
        return 0;
    }
    if (address < s->base || ((end - 1 - s->base) >> 12) >= s->pages) {
        usm_fault(s, address, access);
        return 0;
    }
    __global const ulong* table = (__global const ulong*)s->table;
    ulong first = (address - s->base) >> 12;
    ulong last = (end - 1 - s->base) >> 12;
    ulong e = table[first];
    if (((uint)e & access) != access) {
        usm_fault(s, address, access);
        return 0;
    }
    if (last != first) {
        ulong f = table[last];
        if (((uint)f & access) != access) {
            usm_fault(s, s->base + (last << 12), access);
            return 0;
        }
        if ((f >> 2) != (e >> 2) + 4096) { /* not contiguous on the device */
            usm_fault(s, address, access);
            return 0;
        }
    }
    return (e >> 2) + (address & 4095);
}

uint usm_load_uint(__global usm_space* s, ulong address) {
    ulong d = usm_translate(s, address, 4, USM_READ);
    return d == 0 ? 0u : *(__global const uint*)d;
}
float usm_load_float(__global usm_space* s, ulong address) {
    ulong d = usm_translate(s, address, 4, USM_READ);
    return d == 0 ? 0.0f : *(__global const float*)d;
}
/* A usm::ptr stored in memory. */
ulong usm_load_ptr(__global usm_space* s, ulong address) {
    ulong d = usm_translate(s, address, 8, USM_READ);
    return d == 0 ? 0 : *(__global const ulong*)d;
}
/* Stores return false (storing nothing) after recording a fault. */
bool usm_store_uint(__global usm_space* s, ulong address, uint value) {
    ulong d = usm_translate(s, address, 4, USM_WRITE);
    if (d == 0) return false;
    *(__global uint*)d = value;
    return true;
}
bool usm_store_float(__global usm_space* s, ulong address, float value) {
    ulong d = usm_translate(s, address, 4, USM_WRITE);
    if (d == 0) return false;
    *(__global float*)d = value;
    return true;
}
bool usm_store_ptr(__global usm_space* s, ulong address, ulong value) {
    ulong d = usm_translate(s, address, 8, USM_WRITE);
    if (d == 0) return false;
    *(__global ulong*)d = value;
    return true;
}

#endif
