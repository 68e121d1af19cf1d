// core/residency.hpp - keeping each device within its budget: before a
// launch, prefetch or device placement, its blocks are marked used, blocks
// coming back are shown to the thrashing detector, and blocks are evicted
// until what the operation lacks on the device fits (docs/eviction.md).
#pragma once

#include <array>
#include <cstddef>
#include <span>
#include <vector>

#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "core/eviction.hpp"
#include "core/inflight.hpp"
#include "core/range_request.hpp"
#include "core/thrashing.hpp"

namespace usm::detail {

class residency {
public:
    /// `resident[l]` counts the pages with a copy at location l, over every
    /// allocation (allocation::set_state keeps it).
    residency(const std::array<std::size_t, max_locations>& resident, thrashing_detector& thrashing, evictor& evict,
              std::size_t block_pages) noexcept
        : m_resident(resident), m_thrashing(thrashing), m_evict(evict), m_block_pages(block_pages) {}

    /// Makes room on `dev` for `ranges` ahead of the operation named
    /// `operation`: marks their blocks used (LRU), shows the blocks coming
    /// back to the thrashing detector, then evicts blocks that no in-flight
    /// work at `dev` uses until the pages `ranges` lack there fit its
    /// budget. Returns in-flight work to wait for when only busy blocks could
    /// go (call again after). Throws out_of_memory when `ranges` alone
    /// exceed the budget, with nothing changed; transfer_failed from a
    /// write-back (nothing lost).
    std::vector<pending_wait> reserve(const char* operation, device_slot& dev, std::span<const range_request> ranges,
                                      const allocation_table& table, const inflight_tracker& inflight);

private:
    /// Marks the blocks of `ranges` used on `dev` and notes the ones coming
    /// back; returns the pages `ranges` lack there.
    std::size_t note_use(device_slot& dev, std::span<const range_request> ranges, const allocation_table& table);

    const std::array<std::size_t, max_locations>& m_resident;
    thrashing_detector& m_thrashing;
    evictor& m_evict;
    std::size_t m_block_pages;
};

}  // namespace usm::detail
