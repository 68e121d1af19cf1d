// core/page_table_sync.hpp - bringing a device's page table in step with the
// page states for a launch that takes it (usm::any, usm::declared).
//
// The table (core/page_table.hpp) is rewritten incrementally: each
// allocation's slice by block, only the blocks whose copies changed since it
// was last written (allocation::block_versions), plus the pages an earlier
// launch wrote ahead of its commit. The changed entries and the launch's space
// block become uploads that ride in the launch's staging batch.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/address_space.hpp"
#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "core/inflight.hpp"
#include "core/page_table.hpp"
#include "core/range_request.hpp"
#include "usm/launch.hpp"

namespace usm::detail {

/// One launch's update of `dev`'s table. Under the context lock, with the
/// device's table launch guard held.
class table_writer {
public:
    /// `anywhere`: usm::any (every live page the device holds is reachable);
    /// `checked`: checked mode for a usm::declared launch (declared access, to
    /// the byte; core/device_faults.cpp classifies what it reports).
    table_writer(device_slot& dev, const allocation_table& allocations, const address_space& space, bool anywhere,
                 bool checked) noexcept
        : m_dev(dev),
          m_table(dev.table),
          m_allocations(allocations),
          m_space(space),
          m_anywhere(anywhere),
          m_checked(checked) {}

    /// The uploads bringing the device's table to what the states will be
    /// once `ranges` are staged and committed, and the space block for a
    /// launch declaring `args`. Fills `reachable` with the mirrors its
    /// entries point into and `uses` with the allocations the kernel may
    /// reach beyond `ranges`. Segments of `ranges` must exist. Throws
    /// unsupported (checked mode with too many ranges) or out_of_memory
    /// before the host copy changes; on any later throw the table is
    /// invalidated (the next launch rebuilds it).
    std::vector<upload_op> prepare(std::span<const range_request> ranges, std::span<const launch_arg> args,
                                   std::vector<const device_mirror*>& reachable, std::vector<range_use>& uses);

private:
    /// Erases the slices that no longer hold what the device has: of freed
    /// allocations, and for a usm::declared launch every slice.
    void drop_stale_slices();
    /// For usm::any: each allocation's slice brought up to date.
    void write_current(std::vector<range_use>& uses);
    /// Rewrites entries [from, to) of `a`'s slice from the page states.
    void rewrite(const allocation& a, device_page_table::slice& s, std::size_t from, std::size_t to);
    /// This launch's pages, as they will be once staged and committed.
    void write_launch_ranges(std::span<const range_request> ranges);
    /// The upload of the space block for a launch declaring `declared`.
    upload_op space_block_upload(std::span<const space_range> declared, std::size_t extent,
                                 std::uint64_t table_address);
    /// The table entry of page `p` of `a` with `permission`.
    std::uint64_t page_entry(const allocation& a, std::size_t p, bool in_place, std::uint64_t permission);
    /// Looks up the device addresses of `a`'s segments and import, which
    /// the kernel may now reach.
    void note_mirrors(const allocation& a);
    /// The device address of `m`, which the kernel may now reach.
    std::uint64_t address_of(const device_mirror* m);
    std::size_t first_entry(const allocation& a) const noexcept {
        return static_cast<std::size_t>(a.base - m_space.view_begin()) / page_size;
    }

    device_slot& m_dev;
    device_page_table& m_table;
    const allocation_table& m_allocations;
    const address_space& m_space;
    bool m_anywhere;
    bool m_checked;
    std::vector<const device_mirror*>* m_reachable = nullptr;
    // Device addresses of one allocation's segments and import, looked up
    // once per allocation.
    const allocation* m_cached = nullptr;
    std::vector<std::uint64_t> m_segment_address;
    std::uint64_t m_import_address = 0;
};

/// A launch's declared memory arguments, in usm addresses, with their
/// table_* access.
std::vector<space_range> declared_ranges(std::span<const launch_arg> args);

}  // namespace usm::detail
