// core/migration.cpp - building, routing and issuing transfer batches.
#include "core/migration.hpp"

#include <algorithm>

#include "core/counters.hpp"
#include "core/device_memory.hpp"
#include "core/diagnostics.hpp"
#include "core/fault_injection.hpp"

namespace usm::detail {

namespace {

/// Appends the page at `offset` of `mirror` to a list of byte runs, extending
/// the last run when contiguous. Op is upload_op, download_op or fill_op.
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

template <class Op>
std::size_t total_bytes(std::span<const Op> ops) noexcept {
    std::size_t bytes = 0;
    for (const Op& op : ops) bytes += op.bytes;
    return bytes;
}

}  // namespace

/* --- copy path ------------------------------------------------------------ */

transfer_path migration::path_for(const device_slot& dev, transfer_direction direction, std::size_t bytes) {
    const bool possible = dev.backend->properties().cpu_copies;
    const transfer_path path = m_policies.choose_path({dev.index, direction, bytes, possible});
    return possible ? path : transfer_path::queue;  // a CPU copy the device cannot take is not taken
}

void migration::download(device_slot& dev, std::span<const download_op> ops, std::span<const sync_point> wait_for) {
    const transfer_path path = path_for(dev, transfer_direction::to_host, total_bytes(ops));
    dev.backend->download(ops, wait_for, path);
}

/* --- device -> host ------------------------------------------------------- */

void migration::fetch_to_host(allocation& a, std::span<const std::size_t> pages) {
    // A device's in-place copy is already in host memory: nothing to copy.
    for (std::size_t page : pages)
        if (!a.pages[page].valid_at(host_location) && a.pages[page].in_place != 0) a.mark_host_valid(page);
    // The rest, grouped by the device each page comes from (the lowest one
    // holding it), one download batch per device.
    for (location from = 1; from < max_locations; ++from) fetch_from(a, pages, from);
}

void migration::fetch_from(allocation& a, std::span<const std::size_t> pages, location from) {
    auto comes_from_here = [&](std::size_t page) {
        const page_state& st = a.pages[page];
        return !st.valid_at(host_location) && st.any_valid_except(host_location) == from;
    };
    device_slot* dev = m_devices[from];
    std::vector<download_op> ops;
    std::size_t moved = 0;
    for (std::size_t page : pages) {
        if (!comes_from_here(page)) continue;
        auto [mirror, offset] = segment_at(a, *dev, page << page_shift);
        std::byte* home = m_space.alias_of(a.page_address(page));
        append_page(ops, mirror, offset, [&](std::size_t at) { return download_op{mirror, at, home, page_size}; });
        ++moved;
    }
    if (ops.empty()) return;
    const sync_point producer[] = {a.last_write[from]};
    // Invariant 7: the bytes land in the alias; the view opens afterwards.
    testing::maybe_fail(testing::injected_call::download, *dev->backend);
    const double began = m_trace.now();
    download(*dev, ops, producer);
    if (m_trace.on())
        m_trace.complete("download", "migration", tracer::this_thread(), began, m_trace.now(),
                         concat("\"device\": ", dev->index, ", \"allocation\": ", a.id, ", \"pages\": ", moved,
                                ", \"bytes\": ", moved * page_size, ", \"copies\": ", ops.size()));
    for (std::size_t page : pages)
        if (comes_from_here(page)) a.mark_host_valid(page);
    count(m_counters, &usm::stats::pages_to_host, moved, &a, dev);
    count(m_counters, &usm::stats::bytes_to_host, moved * page_size, &a, dev);
    count(m_counters, &usm::stats::transfer_batches, 1, nullptr, dev);
}

/* --- host -> device ------------------------------------------------------- */

struct migration::upload_plan {
    std::vector<upload_op> copies;
    std::vector<fill_op> fills;
    /// Bytes this device's own in-place kernel wrote to host memory are read
    /// after it: its queue orders neither the transfer queue nor a CPU copy.
    /// (An in-place writer elsewhere was waited for by launch_conflicts.)
    sync_point in_place_writer;
    std::vector<std::pair<std::size_t, std::size_t>> moved;  ///< per range: pages copied, pages filled
};

migration::upload_plan migration::plan_upload(const device_slot& dev, std::span<const range_request> ranges) const {
    const location where = dev.where;
    upload_plan plan;
    plan.moved.resize(ranges.size());
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        const range_request& r = ranges[i];
        const allocation& a = *r.alloc;
        if (r.in_place || a.resident_at(where)) continue;
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            const page_state& st = a.pages[p];
            if (st.copy_at(where)) continue;
            if (!st.valid_at(host_location) && (st.in_place & bit(where)) != 0 &&
                a.last_write[where].value > plan.in_place_writer.value)
                plan.in_place_writer = a.last_write[where];
            auto [mirror, offset] = segment_at(a, dev, p << page_shift);
            if (st.zero) {
                append_page(plan.fills, mirror, offset, [&](std::size_t at) { return fill_op{mirror, at, page_size}; });
                ++plan.moved[i].second;
            } else {
                const std::byte* home = m_space.alias_of(a.page_address(p));
                append_page(plan.copies, mirror, offset, [&](std::size_t at) {
                    return upload_op{mirror, at, home, page_size};
                });
                ++plan.moved[i].first;
            }
        }
    }
    return plan;
}

sync_point migration::upload_for(device_slot& dev, std::span<const range_request> ranges,
                                 std::span<const upload_op> extra) {
    upload_plan plan = plan_upload(dev, ranges);
    const bool migrates = !plan.copies.empty() || !plan.fills.empty();
    if (!migrates && extra.empty()) return {};
    std::size_t copied = 0, filled = 0;
    for (const auto& [c, f] : plan.moved) copied += c, filled += f;
    plan.copies.insert(plan.copies.end(), extra.begin(), extra.end());

    testing::maybe_fail(testing::injected_call::upload, *dev.backend);
    std::span<const sync_point> after;
    if (!plan.in_place_writer.empty()) after = {&plan.in_place_writer, 1};
    const transfer_path path = path_for(
        dev, transfer_direction::to_device,
        total_bytes(std::span<const upload_op>(plan.copies)) + total_bytes(std::span<const fill_op>(plan.fills)));
    const double began = m_trace.now();
    const sync_point staged = dev.backend->upload(plan.copies, plan.fills, after, path);
    if (m_trace.on())
        m_trace.complete(
            "upload", "migration", tracer::this_thread(), began, m_trace.now(),
            concat("\"device\": ", dev.index, ", \"pages\": ", copied, ", \"bytes\": ", copied * page_size,
                   ", \"zero_filled_pages\": ", filled, ", \"queued\": ", staged.empty() ? "false" : "true"));

    // A CPU copy (empty point) is complete already and came after every
    // earlier transfer: the last queued upload stays the one to wait for.
    if (!staged.empty())
        for (const range_request& r : ranges) r.alloc->last_upload[dev.where] = staged;
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        const auto [pages_copied, pages_filled] = plan.moved[i];
        count(m_counters, &usm::stats::pages_to_device, pages_copied, ranges[i].alloc, &dev);
        count(m_counters, &usm::stats::bytes_to_device, pages_copied * page_size, ranges[i].alloc, &dev);
        count(m_counters, &usm::stats::pages_zero_filled, pages_filled, ranges[i].alloc, &dev);
    }
    if (migrates) count(m_counters, &usm::stats::transfer_batches, 1, nullptr, &dev);
    return staged;
}

}  // namespace usm::detail
