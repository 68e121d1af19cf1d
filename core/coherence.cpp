// core/coherence.cpp - copy-state transitions for host faults and launches.
#include "core/coherence.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/diagnostics.hpp"
#include "core/fault_injection.hpp"

namespace usm::detail {

/* --- helpers ------------------------------------------------------------ */

namespace {

/// Appends page `page` to a list of byte runs, extending the last run when
/// contiguous. T is upload_op, download_op or fill_op.
template <class Op, class Make>
void append_page(std::vector<Op>& ops, device_mirror* mirror, std::size_t page, Make&& make) {
    const std::size_t offset = page << page_shift;
    if (!ops.empty()) {
        Op& last = ops.back();
        if (last.mirror == mirror && last.offset + last.bytes == offset) {
            last.bytes += page_size;
            return;
        }
    }
    ops.push_back(make(offset));
}

}  // namespace

std::vector<range_request> merge_requests(std::vector<range_request> requests) {
    std::erase_if(requests, [](const range_request& r) { return r.first_page >= r.end_page; });
    std::sort(requests.begin(), requests.end(), [](const range_request& x, const range_request& y) {
        return x.alloc != y.alloc ? std::less<>()(x.alloc, y.alloc) : x.first_page < y.first_page;
    });
    std::vector<range_request> merged;
    for (std::size_t i = 0; i < requests.size();) {
        // One allocation at a time: cut at every boundary, OR the modes.
        std::size_t j = i;
        std::vector<std::size_t> cuts;
        for (; j < requests.size() && requests[j].alloc == requests[i].alloc; ++j) {
            cuts.push_back(requests[j].first_page);
            cuts.push_back(requests[j].end_page);
        }
        std::sort(cuts.begin(), cuts.end());
        cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
        for (std::size_t c = 0; c + 1 < cuts.size(); ++c) {
            range_request piece{requests[i].alloc, cuts[c], cuts[c + 1], false, false};
            for (std::size_t k = i; k < j; ++k) {
                if (requests[k].first_page <= piece.first_page && piece.end_page <= requests[k].end_page) {
                    piece.reads |= requests[k].reads;
                    piece.writes |= requests[k].writes;
                }
            }
            if (!piece.reads && !piece.writes) continue;
            if (!merged.empty() && merged.back().alloc == piece.alloc && merged.back().end_page == piece.first_page &&
                merged.back().reads == piece.reads && merged.back().writes == piece.writes)
                merged.back().end_page = piece.end_page;
            else
                merged.push_back(piece);
        }
        i = j;
    }
    return merged;
}

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
    apply_host_protection(a, 0, a.page_count);
}

/* --- device -> host ----------------------------------------------------- */

void coherence::fetch_to_host(allocation& a, std::span<const std::size_t> pages) {
    // Group by the device each page comes from (the lowest one holding it),
    // one download batch per device.
    for (location from = 1; from < max_locations; ++from) {
        std::vector<download_op> ops;
        std::size_t count = 0;
        for (std::size_t page : pages) {
            const page_state& st = a.pages[page];
            if (st.valid_at(host_location) || st.any_valid_except(host_location) != from) continue;
            append_page(ops, a.mirrors[from].get(), page, [&](std::size_t offset) {
                return download_op{a.mirrors[from].get(), offset, m_space.alias_of(a.base + offset), page_size};
            });
            ++count;
        }
        if (ops.empty()) continue;
        device_slot* dev = m_devices[from];
        const sync_point producer[] = {a.last_write[from]};
        // Invariant 7: the bytes land in the alias; the view opens afterwards.
        testing::maybe_fail(testing::injected_call::download, *dev->backend);
        dev->backend->download(ops, producer);
        for (std::size_t page : pages)
            if (page_state st = a.pages[page]; st.any_valid_except(host_location) == from) {
                st.valid |= bit(host_location);
                a.set_page(page, st);
            }
        m_counters.pages_to_host += count;
        m_counters.bytes_to_host += count * page_size;
        ++m_counters.transfer_batches;
    }
}

/* --- host faults -------------------------------------------------------- */

std::pair<std::size_t, std::size_t> coherence::density_region(const allocation& a, std::size_t page) const {
    // UVM's density prefetcher, over the aligned power-of-two regions that
    // hold the page: the largest region more than half host-valid (counting
    // what a smaller dense region already brings) is brought back whole. A
    // sequential sweep so faults at pages 0, 1, 2, 4, 8, ... of a block; a
    // random one stays at single pages until its pages fill in.
    std::size_t first = page, end = page + 1;
    for (std::size_t size = 2; size <= m_grant_pages; size *= 2) {
        const std::size_t lo = page & ~(size - 1);
        const std::size_t hi = std::min(lo + size, a.page_count);
        std::size_t valid = end - first;
        for (std::size_t q = lo; q < hi; ++q)
            if ((q < first || q >= end) && a.pages[q].valid_at(host_location)) ++valid;
        if (2 * valid <= size) continue;  // a larger region may still be dense
        first = lo;
        end = hi;
    }
    return {first, end};
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
        // A first write to fresh memory: nothing to copy, so open the whole
        // aligned block of fresh host-only pages at once.
        const std::size_t first = page & ~(m_grant_pages - 1);
        const std::size_t end = std::min(first + m_grant_pages, a.page_count);
        for (std::size_t q = first; q < end; ++q)
            if (a.pages[q].zero && a.pages[q].valid == bit(host_location)) a.set_page(q, {bit(host_location), false});
        apply_host_protection(a, first, end);
        return {{}, true};
    }

    if (!st.valid_at(host_location)) {
        // Bring back the densest aligned region around the page that no
        // in-flight kernel writes (just the page when that region is busy).
        auto [first, end] = density_region(a, page);
        // A fault right after a host-valid run is a sweep: bring a window
        // twice the run ahead, up to the block size (Linux readahead's ramp),
        // so a long sweep takes one fault per block.
        std::size_t run = 0;
        while (run < m_grant_pages && run < page && a.pages[page - 1 - run].valid_at(host_location)) ++run;
        if (run > 0) end = std::max(end, std::min({page + 2 * run, page + m_grant_pages, a.page_count}));
        if (end - first > 1 && !inflight.conflicts(a, first, end, false, host_location).empty())
            first = page, end = page + 1;
        std::vector<std::size_t> missing;
        for (std::size_t q = first; q < end; ++q)
            if (!a.pages[q].valid_at(host_location)) missing.push_back(q);
        fetch_to_host(a, missing);
        m_counters.pages_read_ahead += missing.size() - 1;
        if (end - first > 1) apply_host_protection(a, first, end);
    }
    if (write) {
        a.set_page(page, {bit(host_location), false});  // every other copy is now stale
    }
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
    fetch_to_host(a, missing);
    if (write) {
        for (std::size_t q = first; q < end; ++q) {
            a.set_page(q, {bit(host_location), false});
        }
    }
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

sync_point coherence::stage_for_launch(device_slot& dev, std::span<const range_request> ranges) {
    const location where = dev.where;
    for (const range_request& r : ranges)
        if (!r.alloc->mirrors[where]) {
            testing::maybe_fail(testing::injected_call::create_mirror, *dev.backend);
            r.alloc->mirrors[where] = dev.backend->create_mirror(r.alloc->page_count << page_shift);
        }

    // Pages only another device holds come to the host first (there is no
    // device-to-device path yet); the host keeps a shared copy.
    for (const range_request& r : ranges) {
        if (r.alloc->resident_at(where)) continue;
        std::vector<std::size_t> remote;
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            const page_state& st = r.alloc->pages[p];
            if (!st.valid_at(where) && !st.valid_at(host_location)) remote.push_back(p);
        }
        if (!remote.empty()) {
            fetch_to_host(*r.alloc, remote);
            apply_host_protection(*r.alloc, r.first_page, r.end_page);
        }
    }

    // Narrow the host's access *before* the upload reads the host copy:
    // a concurrent host write would otherwise race the copy (invariant 2).
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

    std::vector<upload_op> copies;
    std::vector<fill_op> fills;
    std::uint64_t copied = 0, filled = 0;
    for (const range_request& r : ranges) {
        allocation& a = *r.alloc;
        if (a.resident_at(where)) continue;
        device_mirror* mirror = a.mirrors[where].get();
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            const page_state& st = a.pages[p];
            if (st.valid_at(where)) continue;
            if (st.zero) {
                append_page(fills, mirror, p, [&](std::size_t offset) { return fill_op{mirror, offset, page_size}; });
                ++filled;
            } else {
                append_page(copies, mirror, p, [&](std::size_t offset) {
                    return upload_op{mirror, offset, m_space.alias_of(a.base + offset), page_size};
                });
                ++copied;
            }
        }
    }
    if (copies.empty() && fills.empty()) return {};

    sync_point staged;
    try {
        testing::maybe_fail(testing::injected_call::upload, *dev.backend);
        staged = dev.backend->upload(copies, fills, {});
    } catch (...) {
        abandon_launch(ranges);
        throw;
    }
    // A CPU copy (empty point) is complete already and came after every
    // earlier transfer: the last queued upload stays the one to wait for.
    if (!staged.empty())
        for (const range_request& r : ranges) r.alloc->last_upload[where] = staged;
    m_counters.pages_to_device += copied;
    m_counters.bytes_to_device += copied * page_size;
    m_counters.pages_zero_filled += filled;
    ++m_counters.transfer_batches;
    return staged;
}

void coherence::commit_launch(location where, std::span<const range_request> ranges, sync_point done) {
    for (const range_request& r : ranges) {
        allocation& a = *r.alloc;
        if (r.writes) a.last_write[where] = done;
        // Already so: nothing changes (a launch over resident memory).
        if (r.writes ? a.owned_by(where) : a.resident_at(where)) continue;
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            page_state st = a.pages[p];
            if (r.writes) {
                st.valid = bit(where);
                st.zero = false;
            } else {
                st.valid |= bit(where);
            }
            a.set_page(p, st);
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

void coherence::check_invariants(const allocation& a) const {
    std::array<std::size_t, max_locations> valid{};
    std::size_t zero = 0;
    for (const page_state& st : a.pages) {
        for (location l = 0; l < max_locations; ++l) valid[l] += st.valid_at(l) ? 1 : 0;
        zero += st.zero ? 1 : 0;
    }
    if (valid != a.valid_pages || zero != a.zero_pages)
        throw std::logic_error(concat("usm page summary of allocation ", a.id, " is out of date: ", a.zero_pages,
                                      " zero pages counted, ", zero, " found; ", a.valid_pages[host_location],
                                      " host-valid counted, ", valid[host_location], " found"));
    for (std::size_t p = 0; p < a.page_count; ++p) {
        const page_state& st = a.pages[p];
        if (st.valid == 0)
            throw std::logic_error(concat("usm invariant 4 broken: page ", p, " of allocation ", a.id, " at ",
                                          static_cast<void*>(a.page_address(p)), " has no valid copy"));
        if (st.zero && !st.valid_at(host_location))
            throw std::logic_error(
                concat("usm invariant 5 broken: zero page ", p, " of allocation ", a.id, " is not valid on the host"));
    }
}

}  // namespace usm::detail
