// core/page_table.cpp - keeping a device's page table in step, by difference.
#include "core/page_table.hpp"

#include <algorithm>
#include <bit>

namespace usm::detail {

namespace {

/// Changed entries closer than this are sent as one copy: a few unchanged
/// bytes cost less than another region.
constexpr std::size_t merge_gap = 64;
constexpr std::size_t min_capacity = 4096 / sizeof(std::uint64_t);  // one page of table

}  // namespace

void device_page_table::reserve(device_backend& dev, std::size_t entries) {
    if (m_table && entries <= m_entries.size()) return;
    const std::size_t capacity = std::max({min_capacity, std::bit_ceil(entries), m_entries.size()});
    auto grown = dev.create_mirror(capacity * sizeof(std::uint64_t));
    m_old = std::move(m_table);
    m_table = std::move(grown);
    m_entries.resize(capacity, 0);  // the new entries read "no copy"
    m_known = false;                // a new mirror: everything goes
    m_changed.clear();
}

std::vector<upload_op> device_page_table::take_uploads() {
    std::vector<upload_op> ops;
    auto copy = [&](std::size_t first, std::size_t end) {
        ops.push_back({m_table.get(), first * sizeof(std::uint64_t),
                       reinterpret_cast<const std::byte*>(m_entries.data() + first),
                       (end - first) * sizeof(std::uint64_t)});
    };
    if (!m_known) {
        copy(0, m_entries.size());
    } else {
        // Runs of changed entries, disjoint (one batch), close ones merged.
        std::sort(m_changed.begin(), m_changed.end());
        std::size_t i = 0;
        while (i < m_changed.size()) {
            const std::size_t first = m_changed[i];
            std::size_t last = first;
            while (++i < m_changed.size() && m_changed[i] - last <= merge_gap) last = m_changed[i];
            copy(first, last + 1);
        }
    }
    m_changed.clear();
    m_known = true;
    return ops;
}

device_mirror& device_page_table::block(device_backend& dev) {
    if (!m_block) m_block = dev.create_mirror(space_block_bytes);
    return *m_block;
}

}  // namespace usm::detail
