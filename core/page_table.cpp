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

std::vector<upload_op> device_page_table::update(device_backend& dev, std::vector<std::uint64_t> entries) {
    if (entries.size() > m_capacity || !m_table) {
        const std::size_t capacity = std::max(min_capacity, std::bit_ceil(entries.size()));
        auto grown = dev.create_mirror(capacity * sizeof(std::uint64_t));
        m_old = std::move(m_table);
        m_table = std::move(grown);
        m_capacity = capacity;
        m_known = false;
    }
    entries.resize(m_capacity, 0);  // entries past the live ones read "no copy"
    std::vector<upload_op> ops;
    auto copy = [&](std::size_t first, std::size_t end) {
        ops.push_back({m_table.get(), first * sizeof(std::uint64_t),
                       reinterpret_cast<const std::byte*>(entries.data() + first),
                       (end - first) * sizeof(std::uint64_t)});
    };
    if (!m_known) {
        copy(0, entries.size());
    } else {
        std::size_t i = 0;
        while (i < entries.size()) {
            if (entries[i] == m_entries[i]) {
                ++i;
                continue;
            }
            std::size_t end = i + 1, last = i;
            while (end < entries.size() && end - last <= merge_gap) {
                if (entries[end] != m_entries[end]) last = end;
                ++end;
            }
            copy(i, last + 1);
            i = last + 1;
        }
    }
    // The ops point into `entries`, which becomes the host copy: moving a
    // vector keeps its buffer.
    m_entries = std::move(entries);
    m_known = true;
    return ops;
}

device_mirror& device_page_table::block(device_backend& dev) {
    if (!m_block) m_block = dev.create_mirror(space_block_bytes);
    return *m_block;
}

}  // namespace usm::detail
