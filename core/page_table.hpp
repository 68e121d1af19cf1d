// core/page_table.hpp - the device page table behind usm::any and
// usm::declared, and the block a kernel reads it through.
//
// Per device, one table: an entry of 8 bytes for every page of the context's
// range up to the highest live allocation. An entry is the device address
// of the page's first byte on that device (in its mirror segment, or in the
// host memory a device uses in place), shifted left by 2 (device memory need
// not be page-aligned: clSVMAlloc aligns to 128 bytes), with the device's
// permission in the two low bits: 0 means the device holds no copy. A launch that takes the table brings it
// in step with the page states (only the entries that changed) in the same
// upload batch as its own migrations, so the table a kernel reads always
// tells what it may touch.
//
// The kernel gets one `space_block`: where the table is, the launch's
// declared ranges (checked mode), and a log of the faults it records
// (shaders/usm.glsl and shaders/usm.cl read the same layout). The layout is
// fixed: those files must change with it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
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
    class launch_guard {
    public:
        explicit launch_guard(device_page_table& t) : m_lock(t.m_launch) {
            lock_ranks::acquire(lock_level::device_table);
        }
        ~launch_guard() { lock_ranks::release(lock_level::device_table); }
        launch_guard(const launch_guard&) = delete;
        launch_guard& operator=(const launch_guard&) = delete;

    private:
        std::lock_guard<std::mutex> m_lock;
    };

    /// The copies that make the device's table equal `entries` (which it
    /// keeps as the host copy): the changed runs, or all of it after the
    /// table had to grow (a new, larger mirror; the old one is kept until
    /// `retire_old` as a launch may still read it). Under the context lock.
    std::vector<upload_op> update(device_backend& dev, std::vector<std::uint64_t> entries);
    /// The device's copy is unknown (an upload failed): the next update
    /// sends everything.
    void invalidate() noexcept { m_known = false; }
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
    std::size_t m_capacity = 0;  // entries m_table holds
    std::vector<std::uint64_t> m_entries;
    bool m_known = false;
    std::unique_ptr<device_mirror> m_block;
    alignas(8) std::array<std::byte, space_block_bytes> m_host_block{};
};

}  // namespace usm::detail
