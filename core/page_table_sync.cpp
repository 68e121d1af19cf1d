// core/page_table_sync.cpp - the device page table brought in step with the
// page states, one launch at a time.
#include "core/page_table_sync.hpp"

#include <algorithm>
#include <cstring>

#include "core/diagnostics.hpp"

namespace usm::detail {

namespace {

std::uint32_t table_access(access a) noexcept {
    return a == access::read ? static_cast<std::uint32_t>(table_read) : static_cast<std::uint32_t>(table_permissions);
}

}  // namespace

std::vector<space_range> declared_ranges(std::span<const launch_arg> args) {
    std::vector<space_range> out;
    for (const launch_arg& a : args) {
        if (a.what != launch_arg::kind::memory) continue;
        const auto begin = reinterpret_cast<std::uintptr_t>(a.memory.address);
        out.push_back({begin, begin + a.memory.bytes, table_access(a.memory.mode), 0});
    }
    return out;
}

/* --- entries ---------------------------------------------------------------- */

std::uint64_t table_writer::address_of(const device_mirror* m) {
    if (std::find(m_reachable->begin(), m_reachable->end(), m) == m_reachable->end()) m_reachable->push_back(m);
    return m_dev.backend->device_address(*m);
}

void table_writer::note_mirrors(const allocation& a) {
    if (&a == m_cached) return;
    m_cached = &a;
    const auto& segments = a.segments[m_dev.where];
    m_segment_address.assign(segments.size(), 0);
    for (std::size_t s = 0; s < segments.size(); ++s)
        if (segments[s]) m_segment_address[s] = address_of(segments[s].get());
    m_import_address = a.imports[m_dev.where] ? address_of(a.imports[m_dev.where].get()) : 0;
}

std::uint64_t table_writer::page_entry(const allocation& a, std::size_t p, bool in_place, std::uint64_t permission) {
    note_mirrors(a);
    const std::size_t per = m_dev.segment_pages;
    const std::uint64_t at =
        in_place ? m_import_address + (p << page_shift) : m_segment_address[p / per] + ((p % per) << page_shift);
    return (at << table_address_shift) | permission;
}

void table_writer::rewrite(const allocation& a, device_page_table::slice& s, std::size_t from, std::size_t to) {
    const location where = m_dev.where;
    const std::size_t first = first_entry(a);
    for (std::size_t p = from; p < to; ++p) {
        const page_state& st = a.pages[p];
        if (!st.valid_at(where)) {
            m_table.set(first + p, 0);
            continue;
        }
        const bool alone = st.valid == bit(where);
        m_table.set(first + p,
                    page_entry(a, p, (st.in_place & bit(where)) != 0, table_read | (alone ? table_write : 0)));
        s.writes = s.writes || alone;
    }
}

/* --- slices ------------------------------------------------------------------ */

void table_writer::drop_stale_slices() {
    // Of allocations freed (a new one at the same place gets a new id: ids
    // are unique), or, for a usm::declared kernel, every slice (it gets its
    // ranges only).
    auto& slices = m_table.slices();
    for (auto it = slices.begin(); it != slices.end();) {
        const allocation* a = m_allocations.find_base(m_space.view_begin() + it->second.first * page_size);
        if (a != nullptr && a->id == it->first && m_anywhere) {
            ++it;
            continue;
        }
        for (std::size_t e = it->second.first; e < it->second.first + it->second.pages; ++e) m_table.set(e, 0);
        it = slices.erase(it);
    }
}

void table_writer::write_current(std::vector<range_use>& uses) {
    // In each allocation's slice: the blocks whose copies changed since it
    // was written, and the pages an earlier launch wrote ahead of its commit.
    const location where = m_dev.where;
    auto& slices = m_table.slices();
    m_allocations.for_each([&](const allocation& a) {
        const bool held = a.valid_pages[where] != 0 || a.in_place_pages != 0;
        auto it = slices.find(a.id);
        if (it == slices.end() && !held) return;
        const bool fresh = it == slices.end() || it->second.whole;
        device_page_table::slice& s = it != slices.end() ? it->second : slices[a.id];
        if (fresh) {
            s = {a.version, first_entry(a), a.page_count, false, false, {}};
            rewrite(a, s, 0, a.page_count);
        } else {
            if (s.version != a.version)
                for (std::size_t b = 0; b < a.block_versions.size(); ++b)
                    if (a.block_versions[b] > s.version)
                        rewrite(a, s, b * a.block_pages, std::min((b + 1) * a.block_pages, a.page_count));
            for (const auto& [from, to] : s.overlay) rewrite(a, s, from, to);
            s.overlay.clear();
            s.version = a.version;
        }
        if (!held) return;  // every entry 0
        note_mirrors(a);    // the kernel may reach its mirrors
        uses.push_back({&a, 0, a.page_count, s.writes});
    });
}

void table_writer::write_launch_ranges(std::span<const range_request> ranges) {
    // Written ones exclusive here; read ones shared, or still exclusive where
    // the device holds the only copy and staging keeps it so (a page used in
    // place must be in host memory: staging fetches a device-only copy home,
    // and it is shared after). Checked mode grants a usm::declared kernel the
    // declared access only. They are rewritten from the states next time.
    const location where = m_dev.where;
    auto& slices = m_table.slices();
    for (const range_request& r : ranges) {
        const allocation& a = *r.alloc;
        const std::size_t first = first_entry(a);
        for (std::size_t p = r.first_page; p < r.end_page; ++p) {
            const page_state& st = a.pages[p];
            const bool stays_alone =
                !m_checked && st.valid == bit(where) && (!r.in_place || (st.in_place & bit(where)) != 0);
            m_table.set(first + p,
                        page_entry(a, p, r.in_place, table_read | (r.writes || stays_alone ? table_write : 0)));
        }
        auto it = slices.find(a.id);
        if (it == slices.end()) {
            slices[a.id] = {a.version, first, a.page_count, r.writes, true, {}};  // only these pages written
        } else {
            it->second.overlay.emplace_back(r.first_page, r.end_page);
            it->second.writes = it->second.writes || r.writes;
        }
    }
}

/* --- the update -------------------------------------------------------------- */

upload_op table_writer::space_block_upload(std::span<const space_range> declared, std::size_t extent,
                                           std::uint64_t table_address) {
    space_block block{};
    block.header.base = reinterpret_cast<std::uintptr_t>(m_space.view_begin());
    block.header.pages = extent;
    block.header.table = table_address;
    block.header.flags = (m_checked ? space_checked : 0) | (m_anywhere ? space_anywhere : 0);
    block.header.fault_capacity = fault_capacity;
    block.header.device = static_cast<std::uint32_t>(m_dev.index);
    if (m_checked) {
        block.header.range_count = static_cast<std::uint32_t>(declared.size());
        std::copy(declared.begin(), declared.end(), block.ranges.begin());
    }
    auto& host = m_table.host_block();
    std::memcpy(host.data(), &block, sizeof block);
    return {&m_table.block(*m_dev.backend), 0, host.data(), sizeof block};
}

std::vector<upload_op> table_writer::prepare(std::span<const range_request> ranges, std::span<const launch_arg> args,
                                             std::vector<const device_mirror*>& reachable,
                                             std::vector<range_use>& uses) {
    m_reachable = &reachable;
    const std::vector<space_range> declared = declared_ranges(args);
    if (m_checked && declared.size() > max_space_ranges)
        throw_error(errc::unsupported, "launch on ", m_dev.backend->properties().name, ": checked mode (USM_CHECK) ",
                    "checks at most ", max_space_ranges, " declared ranges; this launch declares ", declared.size());
    std::size_t extent = 0;  // table entries: up to the end of the highest allocation
    m_allocations.for_each([&](const allocation& a) { extent = std::max(extent, first_entry(a) + a.page_count); });
    // Everything that may throw comes first: from the first entry written,
    // the host copy is ahead of the device's until this launch's batch lands
    // (a failure after that invalidates the table).
    m_table.block(*m_dev.backend);
    m_table.reserve(*m_dev.backend, extent);
    const std::uint64_t table_address = m_dev.backend->device_address(*m_table.table());
    reachable.push_back(m_table.table());
    try {
        drop_stale_slices();
        if (m_anywhere) write_current(uses);
        write_launch_ranges(ranges);
    } catch (...) {
        m_table.invalidate();
        throw;
    }
    std::vector<upload_op> ops = m_table.take_uploads();
    ops.push_back(space_block_upload(declared, extent, table_address));
    return ops;
}

}  // namespace usm::detail
