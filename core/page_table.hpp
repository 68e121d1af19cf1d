// core/page_table.hpp - the device page table behind usm::any and
// usm::declared, and the block a kernel reads it through.
//
// Per device, one table: an entry of 8 bytes for every page of the context's
// range up to the highest live allocation. An entry is the device address
// of the page's first byte on that device (in its mirror segment, or in the
// host memory a device uses in place), shifted left by 2 (device memory need
// not be page-aligned: clSVMAlloc aligns to 128 bytes), with the device's
// permission in the two low bits: 0 means the device holds no copy. A launch
// that takes the table brings it in step with the page states (rewriting
// only the blocks whose copies changed, sending only the entries that did)
// in the same upload batch as its own migrations, so the table a kernel
// reads always tells what it may touch.
//
// The kernel gets one `space_block`: where the table is, the launch's
// declared ranges (checked mode), and a log of the faults it records
// (shaders/usm.glsl and shaders/usm.cl read the same layout). The layout is
// fixed: those files must change with it.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/device_interface.hpp"
#include "core/lock_order.hpp"

namespace usm::detail {

/// Permission bits of a table entry and of a fault record's access.
inline constexpr std::uint64_t table_read = 1;
inline constexpr std::uint64_t table_write = 2;
inline constexpr std::uint64_t table_permissions = table_read | table_write;
inline constexpr unsigned table_address_shift = 2;

/// space_header::flags.
inline constexpr std::uint32_t space_checked = 1;   ///< check declared ranges to the byte
inline constexpr std::uint32_t space_anywhere = 2;  ///< usm::any: every live page may be followed

inline constexpr std::size_t max_space_ranges = 16;

struct space_header {
    std::uint64_t base = 0;   ///< usm address of the table's first page
    std::uint64_t pages = 0;  ///< entries in the table
    std::uint64_t table = 0;  ///< device address of entry 0
    std::uint32_t flags = 0;
    std::uint32_t range_count = 0;
    std::uint32_t fault_count = 0;  ///< faults recorded (atomically; may exceed capacity)
    std::uint32_t fault_capacity = 0;
    std::uint32_t device = 0;  ///< the device's index, copied into each record
    std::uint32_t reserved = 0;
};

/// A declared range in usm addresses [begin, end), with its table_* access.
struct space_range {
    std::uint64_t begin = 0;
    std::uint64_t end = 0;
    std::uint32_t access = 0;
    std::uint32_t reserved = 0;
};

struct fault_record {
    std::uint64_t address = 0;  ///< the usm address accessed
    std::uint32_t access = 0;   ///< table_read or table_write
    std::uint32_t device = 0;
};

/// The first bytes of the block: header and ranges; fault records follow.
struct space_block {
    space_header header;
    std::array<space_range, max_space_ranges> ranges{};
};
static_assert(sizeof(space_header) == 48 && sizeof(space_range) == 24 && sizeof(fault_record) == 16);
static_assert(sizeof(space_block) == 432, "shaders/usm.glsl and shaders/usm.cl hard-code this layout");

inline constexpr std::size_t space_block_bytes = 4096;
inline constexpr std::uint32_t fault_capacity =
    static_cast<std::uint32_t>((space_block_bytes - sizeof(space_block)) / sizeof(fault_record));

/// One device's table and block. Launches through it run one at a time
/// (launch_lock), so the host copies stay unchanged while an upload reads
/// them.
class device_page_table {
public:
    /// Taken first, before any other usm lock (core/lock_order.hpp, level 0).
    class launch_guard : ranked_lock {
    public:
        explicit launch_guard(device_page_table& t) : ranked_lock(t.m_launch, lock_level::device_table) {}
    };

    /// One allocation's slice of the table, as last written: its entries
    /// hold its page states as of `version` (allocation::version), except
    /// the page runs in `overlay` (a launch's ranges, written as they would
    /// be after its commit, or checked mode's declared access), or all of
    /// it when `whole` (only a usm::declared launch's ranges were written):
    /// those are rewritten next time.
    struct slice {
        std::uint64_t version = 0;
        std::size_t first = 0, pages = 0;  // entry index and count
        bool writes = false;               // some entry may grant write
        bool whole = false;
        std::vector<std::pair<std::size_t, std::size_t>> overlay;
    };

    /// Makes the table hold at least `entries` entries (a new, larger mirror
    /// when it must grow: the old one is kept until retire_old, and every
    /// entry is sent again). Throws out_of_memory from create_mirror with
    /// nothing changed. Under the context lock.
    void reserve(device_backend& dev, std::size_t entries);
    /// Sets entry `i` of the host copy (what the device's table holds once
    /// the pending uploads land), remembering it for the next upload when it changes.
    void set(std::size_t i, std::uint64_t value) {
        if (m_entries[i] == value) return;
        m_entries[i] = value;
        if (m_known) m_changed.push_back(i);
    }
    /// The slices written, by allocation id.
    std::unordered_map<std::uint64_t, slice>& slices() noexcept { return m_slices; }
    /// The copies that bring the device's table to the host copy: the changed
    /// runs, or all of it when the device's copy is unknown. The host copy
    /// stays unchanged until the next launch through the table, which comes
    /// after these are complete.
    std::vector<upload_op> take_uploads();
    /// The device's copy is unknown (an upload failed, or a launch that wrote
    /// entries ahead of its commit did not happen): the next launch rebuilds
    /// every slice and sends everything.
    void invalidate() noexcept {
        m_known = false;
        m_slices.clear();
        m_changed.clear();
        std::fill(m_entries.begin(), m_entries.end(), 0);  // no stale grant survives
    }
    /// Drops a table replaced by growth (every launch that read it is done).
    void retire_old() noexcept { m_old.reset(); }

    device_mirror* table() const noexcept { return m_table.get(); }
    /// The block, made on first use (create_mirror). Under the context lock.
    device_mirror& block(device_backend& dev);
    /// Host copy of the block's first bytes: uploaded before a launch,
    /// downloaded into after it.
    std::array<std::byte, space_block_bytes>& host_block() noexcept { return m_host_block; }

private:
    std::mutex m_launch;
    std::unique_ptr<device_mirror> m_table;
    std::unique_ptr<device_mirror> m_old;
    std::vector<std::uint64_t> m_entries;  // m_table's size
    std::vector<std::size_t> m_changed;    // entries set since the last upload
    std::unordered_map<std::uint64_t, slice> m_slices;
    bool m_known = false;
    std::unique_ptr<device_mirror> m_block;
    alignas(8) std::array<std::byte, space_block_bytes> m_host_block{};
};

}  // namespace usm::detail
