// shaders/usm.glsl - following usm pointers inside a Vulkan compute shader.
//
// A launch that passes usm::any (or usm::declared) binds a `usm_space`
// member of the push-constant block: the device's page table and a log of
// faults. usm_translate turns a usm address (a usm::ptr's value, as stored
// in memory by the host or another kernel) into a device address the shader
// may load from or store to, after checking the device's permission for the
// page. An access the table does not allow touches nothing: it is recorded
// as a device fault, which usm services after the kernel (replaying a
// usm::replayable kernel) or reports as errc::device_fault.
// docs/device-faults.md has the whole story; core/page_table.hpp the layout.
//
//     #include "usm.glsl"
//     layout(push_constant, std430) uniform args { usm_space space; uint64_t head; };
//     ...
//     node n = node(usm_translate(space, p, 16u, USM_READ));
//     if (uint64_t(n) == 0) return;  // faulted: usm brings the page and replays
#ifndef USM_GLSL
#define USM_GLSL

#extension GL_EXT_buffer_reference : require
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require

const uint USM_READ = 1u;
const uint USM_WRITE = 2u;
const uint USM_READ_WRITE = 3u;

const uint USM_CHECKED = 1u;   // check declared ranges to the byte (USM_CHECK)
const uint USM_ANYWHERE = 2u;  // usm::any: every live page may be followed

// An entry: the device address of the page's first byte, shifted left by 2,
// with USM_READ and USM_WRITE in the low bits (0: the device holds no copy).
layout(buffer_reference, std430, buffer_reference_align = 8) buffer usm_table { uint64_t entry[]; };

struct usm_range {
    uint64_t begin;
    uint64_t end;
    uint access;
    uint reserved;
};

struct usm_fault_record {
    uint64_t address;
    uint access;
    uint device;
};

layout(buffer_reference, std430, buffer_reference_align = 8) buffer usm_space {
    uint64_t base;   // usm address of the table's first page
    uint64_t pages;  // entries in the table
    usm_table table;
    uint flags;
    uint range_count;
    uint fault_count;
    uint fault_capacity;
    uint device;
    uint reserved;
    usm_range ranges[16];
    usm_fault_record faults[];
};

layout(buffer_reference, std430, buffer_reference_align = 4) buffer usm_uint_ref { uint value; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer usm_float_ref { float value; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer usm_ptr_ref { uint64_t value; };

// Records a fault at `address`; the access itself must then be skipped.
void usm_fault(usm_space s, uint64_t address, uint access) {
    uint slot = atomicAdd(s.fault_count, 1u);
    if (slot < s.fault_capacity) {
        s.faults[slot].address = address;
        s.faults[slot].access = access;
        s.faults[slot].device = s.device;
    }
}

// True once any invocation of this launch recorded a fault: a kernel may
// stop early, since usm will run it again (or report the fault).
bool usm_faulted(usm_space s) { return atomicAdd(s.fault_count, 0u) != 0u; }  // an atomic read: not cached

bool usm_in_declared(usm_space s, uint64_t address, uint64_t end, uint access) {
    for (uint i = 0u; i < s.range_count; ++i)
        if (address >= s.ranges[i].begin && end <= s.ranges[i].end && (s.ranges[i].access & access) == access)
            return true;
    return false;
}

// The device address of `bytes` (1 to 4096) at usm address `address`, for
// `access` (USM_READ, USM_WRITE or both); 0 after recording a fault.
uint64_t usm_translate(usm_space s, uint64_t address, uint bytes, uint access) {
    access = max(access, USM_READ);  // no access at all is checked as a read
    uint64_t end = address + uint64_t(max(bytes, 1u));
    if ((s.flags & USM_CHECKED) != 0u && (s.flags & USM_ANYWHERE) == 0u &&
        !usm_in_declared(s, address, end, access)) {
        usm_fault(s, address, access);
        return 0ul;
    }
    if (address < s.base || ((end - 1ul - s.base) >> 12) >= s.pages) {
        usm_fault(s, address, access);
        return 0ul;
    }
    uint64_t first = (address - s.base) >> 12;
    uint64_t last = (end - 1ul - s.base) >> 12;
    uint64_t e = s.table.entry[uint(first)];
    if ((uint(e) & access) != access) {
        usm_fault(s, address, access);
        return 0ul;
    }
    if (last != first) {
        uint64_t f = s.table.entry[uint(last)];
        if ((uint(f) & access) != access) {
            usm_fault(s, s.base + (last << 12), access);
            return 0ul;
        }
        if ((f >> 2) != (e >> 2) + 4096ul) {  // not contiguous on the device
            usm_fault(s, address, access);
            return 0ul;
        }
    }
    return (e >> 2) + (address & 4095ul);
}

uint usm_load_uint(usm_space s, uint64_t address) {
    uint64_t d = usm_translate(s, address, 4u, USM_READ);
    return d == 0ul ? 0u : usm_uint_ref(d).value;
}
float usm_load_float(usm_space s, uint64_t address) {
    uint64_t d = usm_translate(s, address, 4u, USM_READ);
    return d == 0ul ? 0.0 : usm_float_ref(d).value;
}
// A usm::ptr stored in memory.
uint64_t usm_load_ptr(usm_space s, uint64_t address) {
    uint64_t d = usm_translate(s, address, 8u, USM_READ);
    return d == 0ul ? 0ul : usm_ptr_ref(d).value;
}
// Stores return false (storing nothing) after recording a fault.
bool usm_store_uint(usm_space s, uint64_t address, uint value) {
    uint64_t d = usm_translate(s, address, 4u, USM_WRITE);
    if (d == 0ul) return false;
    usm_uint_ref(d).value = value;
    return true;
}
bool usm_store_float(usm_space s, uint64_t address, float value) {
    uint64_t d = usm_translate(s, address, 4u, USM_WRITE);
    if (d == 0ul) return false;
    usm_float_ref(d).value = value;
    return true;
}
bool usm_store_ptr(usm_space s, uint64_t address, uint64_t value) {
    uint64_t d = usm_translate(s, address, 8u, USM_WRITE);
    if (d == 0ul) return false;
    usm_ptr_ref(d).value = value;
    return true;
}

#endif
