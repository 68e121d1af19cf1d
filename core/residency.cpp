// core/residency.cpp - budgets: use, returns and room.
#include "core/residency.hpp"

#include <algorithm>
#include <optional>

#include "core/device_memory.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

std::size_t residency::note_use(device_slot& dev, std::span<const range_request> ranges,
                                const allocation_table& table) {
    const location l = dev.where;
    ++dev.clock;
    std::size_t missing = 0;
    std::optional<std::size_t> pinned;  // counted at the first return
    for (const range_request& r : ranges) {
        if (r.in_place) continue;
        allocation& a = *r.alloc;
        if (a.blocks[l].empty()) a.blocks[l].resize(a.block_count());
        const bool all_here = a.resident_at(l);
        for (std::size_t b = r.first_page / m_block_pages; b * m_block_pages < r.end_page; ++b) {
            a.blocks[l][b].used = dev.clock;
            if (all_here) continue;
            const std::size_t first = std::max(b * m_block_pages, r.first_page);
            const std::size_t end = std::min((b + 1) * m_block_pages, r.end_page);
            std::size_t lacking = 0;
            for (std::size_t p = first; p < end; ++p) lacking += a.pages[p].copy_at(l) ? 0 : 1;
            missing += lacking;
            if (lacking != 0) m_thrashing.note_return(a, b, dev, table, pinned);
        }
    }
    return missing;
}

std::vector<pending_wait> residency::reserve(const char* operation, device_slot& dev,
                                             std::span<const range_request> ranges, const allocation_table& table,
                                             const inflight_tracker& inflight) {
    const location l = dev.where;
    if (ranges.empty()) return {};
    std::size_t wanted = 0;  // in-place ranges take no device memory
    for (const range_request& r : ranges) wanted += r.in_place ? 0 : r.end_page - r.first_page;
    if (wanted > dev.budget_pages)
        throw_error(errc::out_of_memory, operation, " on ", dev.backend->properties().name, ": its ranges need ",
                    format_bytes(wanted << page_shift), " on the device, more than its budget of ",
                    format_bytes(dev.budget_pages << page_shift),
                    " (USM_DEVICE_BUDGET or context_options::device_budget)");

    const std::size_t missing = note_use(dev, ranges, table);
    // Copies also leave without eviction (a write elsewhere, a page moving
    // home, in-place use): once the driver holds more than the budget in
    // segments, give back every one that is empty now.
    if (dev.segment_pages_live > dev.budget_pages)
        table.for_each([&](allocation& a) {
            if (!a.segments[l].empty()) release_empty_segments(a, dev, inflight);
        });
    const std::size_t resident = m_resident[l];
    if (missing == 0 || resident + missing <= dev.budget_pages) return {};
    const evictor::outcome room =
        m_evict.make_room(dev, resident, resident + missing - dev.budget_pages, ranges, table, inflight);
    // Blocks in use by work queued on the device could not be offered: wait
    // for it and ask again, when they can be (once: they are idle then).
    if (room.pages_left != 0 && room.busy) return inflight.ops_at(l);
    // Otherwise what is left over budget lies in blocks these ranges partly
    // need (the rest of such a block stays), at most a block per range end,
    // or in blocks the eviction policy chose to keep.
    return {};
}

}  // namespace usm::detail
