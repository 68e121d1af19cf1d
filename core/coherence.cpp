// core/coherence.cpp - copy-state transitions for host faults, launches and
// evictions, and the host protection that follows them.
#include "core/coherence.hpp"

#include <algorithm>

#include "core/counters.hpp"
#include "core/device_memory.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

/* --- host protection ---------------------------------------------------- */

void coherence::apply_host_protection(const allocation& a, std::size_t first, std::size_t end) {
    std::size_t run = first;
    while (run < end) {
        const protection p = a.pages[run].host_protection();
        std::size_t stop = run + 1;
        while (stop < end && a.pages[stop].host_protection() == p) ++stop;
        m_space.protect(a.page_address(run), (stop - run) << page_shift, p);
        run = stop;
    }
}

void coherence::init_allocation(allocation& a) {
    a.pages.assign(a.page_count, page_state{});
    a.valid_pages = {};
    a.valid_pages[host_location] = a.page_count;
    a.zero_pages = a.page_count;
    if (a.resident != nullptr) (*a.resident)[host_location] += a.page_count;
    apply_host_protection(a, 0, a.page_count);
}

/* --- host faults -------------------------------------------------------- */

namespace {

/// What the read-ahead policy sees of a fault: the allocation's host copies.
class fault_window final : public host_fault_view {
public:
    fault_window(const detail::allocation& a, std::size_t faulting, std::size_t pages_per_block, bool writes) noexcept
        : m_a(a) {
        allocation = a.base;
        page = faulting;
        page_count = a.page_count;
        block_pages = pages_per_block;
        write = writes;
    }
    bool host_valid(std::size_t p) const noexcept override {
        return p < m_a.page_count && m_a.pages[p].valid_at(host_location);
    }
    std::size_t host_valid_count(std::size_t first, std::size_t end) const noexcept override {
        std::size_t valid = 0;
        for (std::size_t p = first; p < std::min(end, m_a.page_count); ++p)
            valid += m_a.pages[p].valid_at(host_location);
        return valid;
    }

private:
    const detail::allocation& m_a;
};

}  // namespace

void coherence::open_fresh_block(allocation& a, std::size_t page) {
    const std::size_t first = page & ~(m_block_pages - 1);
    const std::size_t end = std::min(first + m_block_pages, a.page_count);
    for (std::size_t q = first; q < end; ++q)
        if (a.pages[q].zero && a.pages[q].valid == bit(host_location)) a.set_copies(q, bit(host_location), false);
    apply_host_protection(a, first, end);
}

void coherence::bring_back(allocation& a, std::size_t page, bool write, const inflight_tracker& inflight) {
    // The policy's range, held to the page and the allocation, and to the
    // page alone where an in-flight kernel writes any of it.
    page_range r = m_policies.read_ahead(fault_window(a, page, m_block_pages, write));
    r.first = std::min(r.first, page);
    r.end = std::clamp(r.end, page + 1, a.page_count);
    if (r.end - r.first > 1 && !inflight.conflicts(a, r.first, r.end, false, host_location).empty())
        r = {page, page + 1};
    std::vector<std::size_t> missing;
    for (std::size_t q = r.first; q < r.end; ++q)
        if (!a.pages[q].valid_at(host_location)) missing.push_back(q);
    m_moves.fetch_to_host(a, missing);
    count(m_counters, &usm::stats::pages_read_ahead, missing.size() - 1, &a, nullptr);
    if (r.end - r.first > 1) apply_host_protection(a, r.first, r.end);
}

coherence::fault_outcome coherence::resolve_host_fault(allocation& a, std::size_t page, host_access kind,
                                                       const inflight_tracker& inflight) {
    const page_state st = a.pages[page];
    // Without a hardware hint, a fault on a page the host may already read
    // can only be a write.
    const bool write = kind == host_access::write || (kind == host_access::unknown && st.valid_at(host_location));

    // Already allowed: another thread resolved it between the fault and the
    // lock, or the page only needs mapping.
    if ((!write && st.valid_at(host_location)) ||
        (write && st.state_at(host_location) == copy_state::exclusive && !st.zero)) {
        apply_host_protection(a, page, page + 1);
        return {};
    }
    if (auto waits = inflight.conflicts(a, page, page + 1, write, host_location); !waits.empty())
        return {std::move(waits), false};
    if (write && st.zero && st.valid == bit(host_location)) {
        open_fresh_block(a, page);
        return {{}, true};
    }
    if (!st.valid_at(host_location)) bring_back(a, page, write, inflight);
    if (write) a.set_copies(page, bit(host_location), false);  // every other copy is now stale
    apply_host_protection(a, page, page + 1);
    return {{}, true};
}

coherence::fault_outcome coherence::resolve_host_range(allocation& a, std::size_t first, std::size_t end, bool write,
                                                       const inflight_tracker& inflight) {
    if (auto waits = inflight.conflicts(a, first, end, write, host_location); !waits.empty())
        return {std::move(waits), false};
    std::vector<std::size_t> missing;
    bool changed = false;
    for (std::size_t q = first; q < end; ++q) {
        const page_state& st = a.pages[q];
        if (!st.valid_at(host_location)) missing.push_back(q);
        if (write && (st.zero || st.valid != bit(host_location))) changed = true;
    }
    m_moves.fetch_to_host(a, missing);
    if (write)
        for (std::size_t q = first; q < end; ++q) a.set_copies(q, bit(host_location), false);
    apply_host_protection(a, first, end);
    return {{}, changed || !missing.empty()};
}

/* --- launches ----------------------------------------------------------- */

std::vector<pending_wait> coherence::launch_conflicts(std::span<const range_request> ranges, location where,
                                                      const inflight_tracker& inflight) const {
    std::vector<pending_wait> waits;
    for (const range_request& r : ranges) {
        auto more = inflight.conflicts(*r.alloc, r.first_page, r.end_page, r.writes, where);
        waits.insert(waits.end(), more.begin(), more.end());
    }
    return waits;
}

void coherence::narrow_for_launch(location where, std::span<const range_request> ranges) {
    // The view's protection is host_protection() of each page outside a
    // transition, so runs already as narrow as needed are left alone: a
    // launch over resident memory makes no mprotect call.
    for (const range_request& r : ranges) {
        const allocation& a = *r.alloc;
        if (r.writes ? a.owned_by(where) : a.resident_at(where)) continue;  // already as narrow
        auto target = [&](std::size_t p) {
            return r.writes ? protection::none : std::min(a.pages[p].host_protection(), protection::read);
        };
        auto unchanged = [&](std::size_t p) { return target(p) == a.pages[p].host_protection(); };
        std::size_t run = r.first_page;
        while (run < r.end_page) {
            if (unchanged(run)) {
                ++run;
                continue;
            }
            const protection p = target(run);
            std::size_t stop = run + 1;
            while (stop < r.end_page && !unchanged(stop) && target(stop) == p) ++stop;
            m_space.protect(a.page_address(run), (stop - run) << page_shift, p);
            run = stop;
        }
    }
}

sync_point coherence::stage_for_launch(device_slot& dev, std::span<const range_request> ranges,
                                       std::span<const upload_op> extra) {
    const location where = dev.where;
    for (const range_request& r : ranges)
        if (!r.in_place) ensure_segments(*r.alloc, dev, r.first_page, r.end_page);

    // Pages only other devices' memory holds come to the host first (there
    // is no device-to-device path yet); the host keeps a shared copy. An
    // in-place launch needs every page in host memory.
    for (const range_request& r : ranges) {
        if (!r.in_place && r.alloc->resident_at(where)) continue;
        std::vector<std::size_t> remote;
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            const page_state& st = r.alloc->pages[p];
            if ((r.in_place || !st.copy_at(where)) && !st.host_memory_current()) remote.push_back(p);
        }
        if (remote.empty()) continue;
        m_moves.fetch_to_host(*r.alloc, remote);
        apply_host_protection(*r.alloc, r.first_page, r.end_page);
    }
    // Narrow the host's access *before* the upload reads the host copy:
    // a concurrent host write would otherwise race the copy (invariant 2).
    narrow_for_launch(where, ranges);
    try {
        return m_moves.upload_for(dev, ranges, extra);
    } catch (...) {
        abandon_launch(ranges);
        throw;
    }
}

void coherence::commit_launch(device_slot& dev, std::span<const range_request> ranges, sync_point done) {
    const location where = dev.where;
    for (const range_request& r : ranges) {
        allocation& a = *r.alloc;
        if (r.writes) a.last_write[where] = done;
        // Already so: nothing changes (a launch over resident memory).
        if (!r.in_place && (r.writes ? a.owned_by(where) : a.resident_at(where))) continue;
        // The device's copy is its mirror, or (in place) the host memory.
        const location_mask here = bit(where);
        if (r.in_place) count(m_counters, &usm::stats::pages_in_place, r.end_page - r.first_page, &a, &dev);
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            const page_state& st = a.pages[p];
            const auto in_place = static_cast<location_mask>(r.in_place ? st.in_place | here : st.in_place & ~here);
            if (r.writes)
                a.set_state(p, here, in_place, false);
            else
                a.set_state(p, st.valid | here, in_place, st.zero);
        }
    }
}

void coherence::abandon_launch(std::span<const range_request> ranges) noexcept {
    for (const range_request& r : ranges) {
        try {
            apply_host_protection(*r.alloc, r.first_page, r.end_page);
        } catch (const std::exception& e) {
            log(log_level::error, "cannot restore host protection after a failed launch: ", e.what());
        }
    }
}

/* --- eviction ------------------------------------------------------------ */

std::pair<std::size_t, std::size_t> coherence::drop_device_copies(allocation& a, device_slot& dev, std::size_t first,
                                                                  std::size_t end) {
    const location l = dev.where;
    std::vector<std::size_t> alone;
    std::size_t held = 0;
    for (std::size_t p = first; p < end; ++p) {
        if (!a.pages[p].copy_at(l)) continue;
        ++held;
        if (a.pages[p].valid == bit(l)) alone.push_back(p);
    }
    // Written back before anything is dropped: if the download throws, the
    // device still holds the only copy and nothing changed.
    m_moves.fetch_to_host(a, alone);
    for (std::size_t p = first; p < end; ++p)
        if (const page_state& st = a.pages[p]; st.copy_at(l))
            a.set_copies(p, static_cast<location_mask>(st.valid & ~bit(l)), st.zero);
    apply_host_protection(a, first, end);
    return {held, alone.size()};
}

}  // namespace usm::detail
