// core/allocation_table.hpp - live allocations, found by any address inside them.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_set>
#include <vector>

#include "core/device_interface.hpp"
#include "core/page_state.hpp"

namespace usm::detail {

/// One allocation: a page-aligned run of the view, its page states and its
/// device mirrors. Owned by the allocation_table; guarded by the context lock.
struct allocation {
    std::byte* base = nullptr;   ///< view address of the first byte
    std::size_t bytes = 0;       ///< as requested
    std::size_t page_count = 0;  ///< pages backing it (a guard page follows, not counted)
    std::uint64_t id = 0;        ///< creation order, for messages
    /// Per page; change only through set_page, which keeps the summary.
    std::vector<page_state> pages;
    /// Summary of `pages`: how many are valid at each location, and how
    /// many are zero. A launch over memory already where it needs to be
    /// checks these instead of every page.
    std::array<std::size_t, max_locations> valid_pages{};
    std::size_t zero_pages = 0;
    /// Device memory per location (index 0, the host, is never used).
    std::array<std::unique_ptr<device_mirror>, max_locations> mirrors;
    /// Per location, the launch that last wrote this allocation there: a
    /// download from that location waits for it (device_interface.hpp).
    std::array<sync_point, max_locations> last_write{};
    /// Per location, the last upload batch into this allocation's mirror
    /// there: a launch there waits for it (a prefetch may still be copying).
    std::array<sync_point, max_locations> last_upload{};

    /// Sets page `page` to `st`, keeping the summary.
    void set_page(std::size_t page, page_state st) noexcept {
        page_state& old = pages[page];
        for (location_mask m = old.valid; m != 0; m &= static_cast<location_mask>(m - 1))
            --valid_pages[static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(m)))];
        for (location_mask m = st.valid; m != 0; m &= static_cast<location_mask>(m - 1))
            ++valid_pages[static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(m)))];
        zero_pages = zero_pages - (old.zero ? 1 : 0) + (st.zero ? 1 : 0);
        old = st;
    }
    /// Every page is valid at `l`.
    bool resident_at(location l) const noexcept { return valid_pages[l] == page_count; }
    /// Every page is valid at `l` only, and none is zero.
    bool owned_by(location l) const noexcept {
        if (!resident_at(l) || zero_pages != 0) return false;
        for (location other = 0; other < max_locations; ++other)
            if (other != l && valid_pages[other] != 0) return false;
        return true;
    }

    std::size_t page_of(const void* p) const noexcept {
        return static_cast<std::size_t>(static_cast<const std::byte*>(p) - base) >> page_shift;
    }
    std::byte* page_address(std::size_t page) const noexcept { return base + (page << page_shift); }
    bool contains(const void* p) const noexcept {
        auto* b = static_cast<const std::byte*>(p);
        return b >= base && b < base + (page_count << page_shift);
    }
};

class allocation_table {
public:
    /// The allocation whose pages hold `p`, or null.
    allocation* find(const void* p) const noexcept;
    /// The allocation that starts exactly at `p`, or null.
    allocation* find_base(const void* p) const noexcept;

    allocation& insert(std::unique_ptr<allocation> a);
    /// Removes `a` and remembers its base as freed (for double-free reports)
    /// until a new allocation reuses that address.
    std::unique_ptr<allocation> remove(allocation& a);
    bool was_freed(const void* base) const noexcept { return m_freed.count(base) != 0; }

    std::size_t size() const noexcept { return m_live.size(); }
    template <class F>
    void for_each(F&& f) const {
        for (auto& [base, a] : m_live) f(*a);
    }

private:
    std::map<const std::byte*, std::unique_ptr<allocation>> m_live;
    std::unordered_set<const void*> m_freed;
};

}  // namespace usm::detail
