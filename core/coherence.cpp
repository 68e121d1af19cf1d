// core/coherence.cpp - copy-state transitions for host faults and launches.
#include "core/coherence.hpp"
#include "core/counters.hpp"

#include <algorithm>
#include <stdexcept>

#include "core/diagnostics.hpp"
#include "core/fault_injection.hpp"

namespace usm::detail {

/* --- helpers ------------------------------------------------------------ */

namespace {

/// Appends the page at `offset` of `mirror` to a list of byte runs, extending
/// the last run when contiguous. T is upload_op, download_op or fill_op.
template <class Op, class Make>
void append_page(std::vector<Op>& ops, device_mirror* mirror, std::size_t offset, Make&& make) {
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

/* --- device memory ------------------------------------------------------ */

void coherence::ensure_segments(allocation& a, device_slot& dev, std::size_t first, std::size_t end) {
    auto& segments = a.segments[dev.where];
    const std::size_t per = dev.segment_pages;
    if (segments.empty()) segments.resize((a.page_count + per - 1) / per);
    for (std::size_t s = first / per; s * per < end; ++s) {
        if (segments[s]) continue;
        testing::maybe_fail(testing::injected_call::create_mirror, *dev.backend);
        const std::size_t pages = std::min(per, a.page_count - s * per);
        segments[s] = dev.backend->create_mirror(pages << page_shift);
        dev.segment_pages_live += pages;
    }
}

std::size_t coherence::live_segment_pages(const allocation& a, location l) const noexcept {
    const std::size_t per = m_devices[l]->segment_pages;
    std::size_t pages = 0;
    for (std::size_t s = 0; s < a.segments[l].size(); ++s)
        if (a.segments[l][s]) pages += std::min(per, a.page_count - s * per);
    return pages;
}

std::pair<device_mirror*, std::size_t> coherence::segment_at(const allocation& a, location l,
                                                             std::size_t offset) const {
    const std::size_t per = m_devices[l]->segment_pages << page_shift;
    return {a.segments[l][offset / per].get(), offset % per};
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
    if (a.resident != nullptr) (*a.resident)[host_location] += a.page_count;
    apply_host_protection(a, 0, a.page_count);
}

/* --- device -> host ----------------------------------------------------- */

void coherence::fetch_to_host(allocation& a, std::span<const std::size_t> pages) {
    // Preferred at home: the page moves instead of being shared, unless a
    // device holds it in place: that copy takes no device memory, and a
    // kernel there may still be reading it (a host-exclusive page would let
    // the host write under it).
    auto now_on_host = [&](std::size_t page) {
        const page_state& st = a.pages[page];
        const bool move = st.advice.prefers(host_location) && st.in_place == 0;
        a.set_copies(page, move ? bit(host_location) : st.valid | bit(host_location), st.zero);
    };
    // A device's in-place copy is already in host memory: nothing to copy.
    for (std::size_t page : pages)
        if (!a.pages[page].valid_at(host_location) && a.pages[page].in_place != 0) now_on_host(page);
    // The rest, grouped by the device each page comes from (the lowest one
    // holding it), one download batch per device.
    for (location from = 1; from < max_locations; ++from) {
        std::vector<download_op> ops;
        std::size_t count = 0;
        for (std::size_t page : pages) {
            const page_state& st = a.pages[page];
            if (st.valid_at(host_location) || st.any_valid_except(host_location) != from) continue;
            auto [mirror, offset] = segment_at(a, from, page << page_shift);
            std::byte* home = m_space.alias_of(a.page_address(page));
            append_page(ops, mirror, offset, [&](std::size_t at) { return download_op{mirror, at, home, page_size}; });
            ++count;
        }
        if (ops.empty()) continue;
        device_slot* dev = m_devices[from];
        const sync_point producer[] = {a.last_write[from]};
        // Invariant 7: the bytes land in the alias; the view opens afterwards.
        testing::maybe_fail(testing::injected_call::download, *dev->backend);
        const double began = m_trace.now();
        dev->backend->download(ops, producer);
        if (m_trace.on())
            m_trace.complete("download", "migration", tracer::this_thread(), began, m_trace.now(),
                             concat("\"device\": ", dev->index, ", \"allocation\": ", a.id, ", \"pages\": ", count,
                                    ", \"bytes\": ", count * page_size, ", \"copies\": ", ops.size()));
        for (std::size_t page : pages)
            if (const page_state& st = a.pages[page];
                !st.valid_at(host_location) && st.any_valid_except(host_location) == from)
                now_on_host(page);
        detail::count(m_counters, &usm::stats::pages_to_host, count, &a, dev);
        detail::count(m_counters, &usm::stats::bytes_to_host, count * page_size, &a, dev);
        detail::count(m_counters, &usm::stats::transfer_batches, 1, nullptr, dev);
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
    for (std::size_t size = 2; size <= m_block_pages; size *= 2) {
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
        const std::size_t first = page & ~(m_block_pages - 1);
        const std::size_t end = std::min(first + m_block_pages, a.page_count);
        for (std::size_t q = first; q < end; ++q)
            if (a.pages[q].zero && a.pages[q].valid == bit(host_location)) a.set_copies(q, bit(host_location), false);
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
        while (run < m_block_pages && run < page && a.pages[page - 1 - run].valid_at(host_location)) ++run;
        if (run > 0) end = std::max(end, std::min({page + 2 * run, page + m_block_pages, a.page_count}));
        if (end - first > 1 && !inflight.conflicts(a, first, end, false, host_location).empty())
            first = page, end = page + 1;
        std::vector<std::size_t> missing;
        for (std::size_t q = first; q < end; ++q)
            if (!a.pages[q].valid_at(host_location)) missing.push_back(q);
        fetch_to_host(a, missing);
        detail::count(m_counters, &usm::stats::pages_read_ahead, missing.size() - 1, &a, nullptr);
        if (end - first > 1) apply_host_protection(a, first, end);
    }
    if (write) {
        a.set_copies(page, bit(host_location), false);  // every other copy is now stale
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
            a.set_copies(q, bit(host_location), false);
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
    // Bytes this device's own in-place kernel wrote to host memory are read
    // after it: its queue orders neither the transfer queue nor a CPU copy.
    // (An in-place writer elsewhere was waited for by launch_conflicts.)
    sync_point in_place_writer;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> moved(ranges.size());  // per range: copied, filled
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        const range_request& r = ranges[i];
        allocation& a = *r.alloc;
        if (r.in_place || a.resident_at(where)) continue;
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            const page_state& st = a.pages[p];
            if (st.copy_at(where)) continue;
            if (!st.valid_at(host_location) && (st.in_place & bit(where)) != 0 &&
                a.last_write[where].value > in_place_writer.value)
                in_place_writer = a.last_write[where];
            auto [mirror, offset] = segment_at(a, where, p << page_shift);
            if (st.zero) {
                append_page(fills, mirror, offset, [&](std::size_t at) { return fill_op{mirror, at, page_size}; });
                ++filled;
                ++moved[i].second;
            } else {
                const std::byte* home = m_space.alias_of(a.page_address(p));
                append_page(copies, mirror, offset, [&](std::size_t at) {
                    return upload_op{mirror, at, home, page_size};
                });
                ++copied;
                ++moved[i].first;
            }
        }
    }
    const bool migrates = !copies.empty() || !fills.empty();
    if (!migrates && extra.empty()) return {};
    copies.insert(copies.end(), extra.begin(), extra.end());

    sync_point staged;
    try {
        testing::maybe_fail(testing::injected_call::upload, *dev.backend);
        std::span<const sync_point> after;
        if (!in_place_writer.empty()) after = {&in_place_writer, 1};
        const double began = m_trace.now();
        staged = dev.backend->upload(copies, fills, after);
        if (m_trace.on())
            m_trace.complete(
                "upload", "migration", tracer::this_thread(), began, m_trace.now(),
                concat("\"device\": ", dev.index, ", \"pages\": ", copied, ", \"bytes\": ", copied * page_size,
                       ", \"zero_filled_pages\": ", filled, ", \"queued\": ", staged.empty() ? "false" : "true"));
    } catch (...) {
        abandon_launch(ranges);
        throw;
    }
    // A CPU copy (empty point) is complete already and came after every
    // earlier transfer: the last queued upload stays the one to wait for.
    if (!staged.empty())
        for (const range_request& r : ranges) r.alloc->last_upload[where] = staged;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        detail::count(m_counters, &usm::stats::pages_to_device, moved[i].first, ranges[i].alloc, &dev);
        detail::count(m_counters, &usm::stats::bytes_to_device, moved[i].first * page_size, ranges[i].alloc, &dev);
        detail::count(m_counters, &usm::stats::pages_zero_filled, moved[i].second, ranges[i].alloc, &dev);
    }
    if (migrates) detail::count(m_counters, &usm::stats::transfer_batches, 1, nullptr, &dev);
    return staged;
}

void coherence::commit_launch(location where, std::span<const range_request> ranges, sync_point done) {
    for (const range_request& r : ranges) {
        allocation& a = *r.alloc;
        if (r.writes) a.last_write[where] = done;
        // Already so: nothing changes (a launch over resident memory).
        if (!r.in_place && (r.writes ? a.owned_by(where) : a.resident_at(where))) continue;
        // The device's copy is its mirror, or (in place) the host memory.
        const location_mask here = bit(where);
        if (r.in_place)
            detail::count(m_counters, &usm::stats::pages_in_place, r.end_page - r.first_page, &a, m_devices[where]);
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

/* --- budget and eviction ------------------------------------------------- */

namespace {

/// The order eviction takes blocks in: lowest rank first, then least
/// recently used.
enum eviction_rank : int {
    preferred_elsewhere = 0,  ///< every page prefers another location
    plain = 1,
    kept = 2,    ///< read-mostly, or preferring this device
    pinned = 3,  ///< caught bouncing: goes only when nothing else can
};

}  // namespace

std::vector<pending_wait> coherence::reserve(const char* operation, device_slot& dev,
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

    const std::size_t budget_blocks = std::max<std::size_t>(dev.budget_pages / m_block_pages, 1);
    const bool in_place_capable = dev.backend->properties().host_memory_in_place;
    ++dev.clock;
    std::size_t missing = 0;
    for (const range_request& r : ranges) {
        if (r.in_place) continue;
        allocation& a = *r.alloc;
        if (a.blocks[l].empty()) a.blocks[l].resize(a.block_count());
        const bool all_here = a.resident_at(l);
        for (std::size_t b = r.first_page / m_block_pages; b * m_block_pages < r.end_page; ++b) {
            block_record& rec = a.blocks[l][b];
            rec.used = dev.clock;
            if (all_here) continue;
            const std::size_t first = std::max(b * m_block_pages, r.first_page);
            const std::size_t end = std::min((b + 1) * m_block_pages, r.end_page);
            std::size_t lacking = 0;
            for (std::size_t p = first; p < end; ++p) lacking += a.pages[p].copy_at(l) ? 0 : 1;
            missing += lacking;
            if (lacking == 0) continue;
            if (rec.lost) {
                // Back after a write elsewhere (the host's, or another
                // device's) took it: a block handed back and forth. Where
                // this device can reach host memory, the fourth time it stays
                // there instead, accessed in place (as if advised
                // accessed_by): nothing moves either way any more.
                rec.lost = false;
                if (++rec.handovers >= 4 && in_place_capable) {
                    rec.handovers = 0;
                    turn_in_place(a, b, l);
                }
            }
            // Back within four budgets' worth of evictions of leaving: the
            // working set cycles through a few times the budget, and LRU
            // evicts every block before its next use. A block that bounces
            // twice stays (while pinned blocks fill at most half the
            // budget), so part of the cycle hits and the rest has room.
            if (rec.evicted_at == 0 || dev.evictions - rec.evicted_at >= 4 * budget_blocks) {
                rec.evicted_at = 0;
                continue;
            }
            rec.evicted_at = 0;
            if (++rec.bounces < 2) continue;
            if (in_place_capable && m_thrash_in_place) {
                // Where the device reaches host memory, a block that keeps
                // bouncing stays there and is used in place: it needs no
                // room at all, and nothing moves for it any more.
                rec.bounces = 0;
                turn_in_place(a, b, l);
                continue;
            }
            std::size_t pinned_now = 0;
            table.for_each([&](const allocation& other) {
                for (const block_record& o : other.blocks[l]) pinned_now += o.pinned_until > dev.evictions ? 1 : 0;
            });
            if (2 * (pinned_now + 1) > budget_blocks) continue;
            rec.bounces = 0;
            rec.pinned_until = dev.evictions + 8 * budget_blocks;
            detail::count(m_counters, &usm::stats::blocks_pinned, 1, &a, &dev);
        }
    }
    // Copies also leave without eviction (a write elsewhere, a page moving
    // home, in-place use): once the driver holds more than the budget in
    // segments, give back every one that is empty now.
    if (dev.segment_pages_live > dev.budget_pages)
        table.for_each([&](allocation& a) {
            if (!a.segments[l].empty()) release_empty_segments(a, dev, inflight);
        });
    const std::size_t resident = (*ranges.front().alloc->resident)[l];
    if (missing == 0 || resident + missing <= dev.budget_pages) return {};
    std::size_t excess = resident + missing - dev.budget_pages;

    struct candidate {
        allocation* alloc;
        std::size_t block;
        int rank;
        std::uint64_t used;
        std::size_t pages;
    };
    std::vector<candidate> candidates;
    bool busy = false;
    table.for_each([&](allocation& a) {
        if (a.valid_pages[l] == 0) return;
        for (std::size_t b = 0; b < a.block_count(); ++b) {
            const std::size_t first = b * m_block_pages, end = std::min(first + m_block_pages, a.page_count);
            std::size_t here = 0, elsewhere = 0;
            bool keep = false;
            for (std::size_t p = first; p < end; ++p) {
                const page_state& st = a.pages[p];
                if (!st.copy_at(l)) continue;
                ++here;
                elsewhere += st.advice.prefers_elsewhere(l) ? 1 : 0;
                keep = keep || st.advice.read_mostly || st.advice.prefers(l);
            }
            if (here == 0) continue;
            const bool needed = std::any_of(ranges.begin(), ranges.end(), [&](const range_request& r) {
                return !r.in_place && r.alloc == &a && r.first_page < end && first < r.end_page;
            });
            if (needed) continue;
            if (inflight.busy_at(a, first, end, l)) {
                busy = true;
                continue;
            }
            const block_record rec = a.blocks[l].empty() ? block_record{} : a.blocks[l][b];
            const int rank = rec.pinned_until > dev.evictions ? pinned
                             : keep                           ? kept
                             : elsewhere == here              ? preferred_elsewhere
                                                              : plain;
            candidates.push_back({&a, b, rank, rec.used, here});
        }
    });
    std::sort(candidates.begin(), candidates.end(), [](const candidate& x, const candidate& y) {
        return x.rank != y.rank ? x.rank < y.rank : x.used < y.used;
    });
    std::vector<allocation*> touched;
    for (const candidate& c : candidates) {
        if (excess == 0) break;
        evict_block(*c.alloc, dev, c.block);
        excess -= std::min(excess, c.pages);
        if (std::find(touched.begin(), touched.end(), c.alloc) == touched.end()) touched.push_back(c.alloc);
    }
    for (allocation* a : touched) release_empty_segments(*a, dev, inflight);
    if (excess == 0) return {};
    // Everything left is in use by work queued on the device: wait for it.
    if (busy) return inflight.ops_at(l);
    // What is left over budget lies in blocks these ranges partly need (the
    // rest of such a block stays): at most a block per range end.
    return {};
}

void coherence::turn_in_place(allocation& a, std::size_t block, location l) {
    const std::size_t end = std::min((block + 1) * m_block_pages, a.page_count);
    for (std::size_t p = block * m_block_pages; p < end; ++p) a.set_accessed_by(p, l, true);
    detail::count(m_counters, &usm::stats::blocks_in_place, 1, &a, m_devices[l]);
}

void coherence::evict_block(allocation& a, device_slot& dev, std::size_t block) {
    const location l = dev.where;
    const std::size_t first = block * m_block_pages, end = std::min(first + m_block_pages, a.page_count);
    std::vector<std::size_t> alone;
    std::size_t held = 0;
    for (std::size_t p = first; p < end; ++p) {
        if (!a.pages[p].copy_at(l)) continue;
        ++held;
        if (a.pages[p].valid == bit(l)) alone.push_back(p);
    }
    // Written back before anything is dropped: if the download throws, the
    // device still holds the only copy and nothing changed.
    const double began = m_trace.now();
    fetch_to_host(a, alone);
    for (std::size_t p = first; p < end; ++p)
        if (const page_state& st = a.pages[p]; st.copy_at(l))
            a.set_copies(p, static_cast<location_mask>(st.valid & ~bit(l)), st.zero);
    apply_host_protection(a, first, end);
    block_record& rec = a.blocks[l][block];
    rec.evicted_at = ++dev.evictions;
    rec.lost = false;  // it left to make room, not because a write took it
    rec.pinned_until = 0;
    detail::count(m_counters, &usm::stats::blocks_evicted, 1, &a, &dev);
    detail::count(m_counters, &usm::stats::pages_evicted, held, &a, &dev);
    detail::count(m_counters, &usm::stats::pages_written_back, alone.size(), &a, &dev);
    if (m_trace.on())
        m_trace.complete("evict", "eviction", tracer::this_thread(), began, m_trace.now(),
                         concat("\"device\": ", dev.index, ", \"allocation\": ", a.id, ", \"block\": ", block,
                                ", \"pages\": ", held, ", \"written_back\": ", alone.size()));
}

void coherence::release_empty_segments(allocation& a, device_slot& dev, const inflight_tracker& inflight) {
    const location l = dev.where;
    const std::size_t per = dev.segment_pages;
    auto& segments = a.segments[l];
    for (std::size_t s = 0; s < segments.size(); ++s) {
        if (!segments[s]) continue;
        const std::size_t first = s * per, end = std::min(first + per, a.page_count);
        bool empty = true;
        for (std::size_t p = first; p < end && empty; ++p) empty = !a.pages[p].copy_at(l);
        if (empty && !inflight.busy_at(a, first, end, l)) {
            segments[s].reset();
            dev.segment_pages_live -= end - first;
        }
    }
}

void coherence::check_invariants(const allocation& a) const {
    std::array<std::size_t, max_locations> valid{};
    std::array<std::size_t, max_locations> accessed{};
    std::size_t zero = 0, in_place = 0;
    for (const page_state& st : a.pages) {
        for (location l = 0; l < max_locations; ++l) valid[l] += st.copy_at(l) ? 1 : 0;
        for (location l = 0; l < max_locations; ++l) accessed[l] += (st.accessed_by & bit(l)) ? 1 : 0;
        zero += st.zero ? 1 : 0;
        in_place += st.in_place != 0 ? 1 : 0;
    }
    if (valid != a.valid_pages || zero != a.zero_pages || in_place != a.in_place_pages || accessed != a.accessed_pages)
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
        if ((st.in_place & ~st.valid) != 0 || (st.in_place & bit(host_location)) != 0)
            throw std::logic_error(concat("usm page ", p, " of allocation ", a.id, " is in place at a location",
                                          " without a valid copy there, or at the host"));
        for (location l = 1; l < max_locations; ++l)
            if (st.in_place & bit(l)
                    ? !a.imports[l]
                    : st.copy_at(l) && (a.segments[l].empty() || segment_at(a, l, p << page_shift).first == nullptr))
                throw std::logic_error(concat("usm page ", p, " of allocation ", a.id, " is valid on device ", l - 1,
                                              " but its device memory (segment or import) is gone"));
    }
}

}  // namespace usm::detail
