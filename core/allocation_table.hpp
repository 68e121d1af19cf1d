// core/allocation_table.hpp - live allocations, found by any address inside them.
#pragma once

#include <array>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <unordered_set>
#include <utility>
#include <vector>

#include "core/device_interface.hpp"
#include "core/page_state.hpp"
#include "core/trace.hpp"
#include "usm/stats.hpp"

namespace usm::detail {

/// What eviction knows about one block (context_options::block_size, 2 MiB
/// by default, as UVM's VA blocks) of an allocation on one device.
struct block_record {
    std::uint64_t used = 0;          ///< the device's clock at the last launch or prefetch that needed it
    std::uint64_t evicted_at = 0;    ///< the device's eviction count just after it was last evicted (0: never)
    std::uint64_t pinned_until = 0;  ///< kept on the device until its eviction count passes this
    std::uint32_t bounces = 0;       ///< times it came back soon after being evicted
    std::uint32_t handovers = 0;     ///< times it came back after another location's write took it
    bool lost = false;               ///< a copy here was invalidated by a write elsewhere since its last use
};

/// One allocation: a page-aligned run of the view, its page states and its
/// device copies. Owned by the allocation_table; guarded by the context lock.
struct allocation {
    std::byte* base = nullptr;      ///< view address of the first byte
    std::size_t bytes = 0;          ///< as requested
    std::size_t page_count = 0;     ///< pages backing it (a guard page follows, not counted)
    std::uint64_t id = 0;           ///< creation order, for messages
    std::size_t block_pages = 512;  ///< pages per block (context_options::block_size)
    /// Per page; change copies only through set_copies and set_state, which
    /// keep the summaries.
    std::vector<page_state> pages;
    /// Summary of `pages`: how many have a copy in each location's own
    /// memory (in-place copies are not counted), and how many are zero. A
    /// launch over memory already where it needs to be checks these instead
    /// of every page.
    std::array<std::size_t, max_locations> valid_pages{};
    std::size_t zero_pages = 0;
    std::size_t in_place_pages = 0;  ///< pages valid in place at some device
    /// Per location, pages advised accessed_by it (kept by context::advise).
    std::array<std::size_t, max_locations> accessed_pages{};
    /// The context-wide count of copies per location (device residency
    /// against the budget), kept by set_state.
    std::array<std::size_t, max_locations>* resident = nullptr;
    /// Bumped whenever a page's copies change (set_state), and per block the
    /// version of its last change: a device page table rewrites only the
    /// blocks that changed since it last wrote the allocation's entries.
    std::uint64_t version = 0;
    std::vector<std::uint64_t> block_versions;
    /// What moved in and out of this allocation (context::stats(p)).
    usm::stats counters{};
    /// Where copy changes are traced (USM_TRACE), or null.
    tracer* trace = nullptr;
    /// Per location (index 0, the host, is never used): device memory, in
    /// segments of that device's segment size, each created when its first
    /// page is needed there. A page with a copy at a device lies in a live
    /// segment.
    std::array<std::vector<std::unique_ptr<device_mirror>>, max_locations> segments;
    /// Per location: the allocation's host memory imported for in-place
    /// access (device_backend::import_host), made at the first such launch.
    std::array<std::unique_ptr<device_mirror>, max_locations> imports;
    location_mask import_refused = 0;  ///< devices whose import_host failed: they migrate it
    /// Per location, per block: recency and bouncing, for eviction.
    std::array<std::vector<block_record>, max_locations> blocks;
    /// Per location, the launch that last wrote this allocation there: a
    /// download from that location waits for it (device_interface.hpp).
    std::array<sync_point, max_locations> last_write{};
    /// Per location, the last upload batch into this allocation's mirror
    /// there: a launch there waits for it (a prefetch may still be copying).
    std::array<sync_point, max_locations> last_upload{};

    /// Sets page `page`'s copies (its advice stays), keeping the summaries.
    void set_state(std::size_t page, location_mask valid, location_mask in_place, bool zero) noexcept {
        assert(valid != 0 && "usm invariant 4: every page keeps a valid copy");
        page_state& st = pages[page];
        const location_mask before = st.copies();
        const location_mask was_valid = st.valid, was_in_place = st.in_place;
        in_place_pages -= st.in_place != 0 ? 1 : 0;
        st.valid = valid;
        st.in_place = static_cast<location_mask>(in_place & valid & ~bit(host_location));
        const location_mask after = st.copies();
        in_place_pages += st.in_place != 0 ? 1 : 0;
        for (location_mask m = before & ~after; m != 0; m &= static_cast<location_mask>(m - 1)) {
            const auto l = static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(m)));
            --valid_pages[l];
            if (resident != nullptr) --(*resident)[l];
            if (!blocks[l].empty()) blocks[l][page / block_pages].lost = true;  // eviction clears it
        }
        for (location_mask m = after & ~before; m != 0; m &= static_cast<location_mask>(m - 1)) {
            const auto l = static_cast<std::size_t>(std::countr_zero(static_cast<unsigned>(m)));
            ++valid_pages[l];
            if (resident != nullptr) ++(*resident)[l];
        }
        zero_pages = zero_pages - (st.zero ? 1 : 0) + (zero ? 1 : 0);
        st.zero = zero;
        if (was_valid != st.valid || was_in_place != st.in_place) {
            ++version;
            if (!block_versions.empty()) block_versions[page / block_pages] = version;
        }
        if (trace != nullptr && was_valid != st.valid) trace->residency(id, page, st.valid);
    }
    /// set_state keeping the in-place copies that stay valid.
    void set_copies(std::size_t page, location_mask valid, bool zero) noexcept {
        set_state(page, valid, pages[page].in_place, zero);
    }
    /// Page `page` (valid elsewhere) has just been copied to the host: it is
    /// shared with the host, or moved home (host only) where it prefers the
    /// host, unless a device holds it in place: that copy takes no device
    /// memory, and a kernel there may still be reading it (a host-exclusive
    /// page would let the host write under it).
    void mark_host_valid(std::size_t page) noexcept {
        const page_state& st = pages[page];
        const bool move = st.advice.prefers(host_location) && st.in_place == 0;
        set_copies(page, move ? bit(host_location) : static_cast<location_mask>(st.valid | bit(host_location)),
                   st.zero);
    }
    /// Sets or clears page `page`'s accessed_by advice for `l`, keeping
    /// accessed_pages.
    void set_accessed_by(std::size_t page, location l, bool on) noexcept {
        location_mask& m = pages[page].accessed_by;
        if (((m & bit(l)) != 0) == on) return;
        m = static_cast<location_mask>(on ? m | bit(l) : m & ~bit(l));
        on ? ++accessed_pages[l] : --accessed_pages[l];
    }
    /// Every page has a copy in `l`'s own memory.
    bool resident_at(location l) const noexcept { return valid_pages[l] == page_count; }
    /// Every page has its only copy in `l`'s own memory, and none is zero.
    bool owned_by(location l) const noexcept {
        if (!resident_at(l) || zero_pages != 0 || in_place_pages != 0) return false;
        for (location other = 0; other < max_locations; ++other)
            if (other != l && valid_pages[other] != 0) return false;
        return true;
    }

    std::size_t page_of(const void* p) const noexcept {
        return static_cast<std::size_t>(static_cast<const std::byte*>(p) - base) >> page_shift;
    }
    /// The pages [first, end) that the `count` (> 0) bytes from `p` touch.
    std::pair<std::size_t, std::size_t> pages_of(const void* p, std::size_t count) const noexcept {
        return {page_of(p), page_of(static_cast<const std::byte*>(p) + count - 1) + 1};
    }
    std::byte* page_address(std::size_t page) const noexcept { return base + (page << page_shift); }
    bool contains(const void* p) const noexcept {
        auto* b = static_cast<const std::byte*>(p);
        return b >= base && b < base + (page_count << page_shift);
    }
    /// Blocks of `block_pages` pages (the last one may be short).
    std::size_t block_count() const noexcept { return (page_count + block_pages - 1) / block_pages; }
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
