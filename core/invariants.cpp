// core/invariants.cpp - checking DESIGN.md's invariants on the live state,
// for tests and debug runs (context_impl::check_invariants): page states and
// their summaries, device memory counts, and what the MMU really allows.
// Each broken invariant throws std::logic_error naming the page.
#include <array>
#include <span>
#include <stdexcept>

#include "core/context_impl.hpp"
#include "core/device_memory.hpp"
#include "core/diagnostics.hpp"
#include "core/mmu_check.hpp"

namespace usm::detail {

namespace {

/// Checks invariants 1, 4 and 5 on every page of `a`, its summaries, and
/// that every device copy lies in live device memory.
void check_allocation(const allocation& a, std::span<device_slot* const> devices) {
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
            if (st.in_place & bit(l) ? !a.imports[l]
                                     : st.copy_at(l) && (a.segments[l].empty() ||
                                                         segment_at(a, *devices[l], p << page_shift).first == nullptr))
                throw std::logic_error(concat("usm page ", p, " of allocation ", a.id, " is valid on device ", l - 1,
                                              " but its device memory (segment or import) is gone"));
    }
}

}  // namespace

void context_impl::check_invariants() const {
    std::lock_guard lock(m_lock);
    const mmu_snapshot mmu(m_space->view_begin(), m_space->view_begin() + m_space->size());
    std::array<std::size_t, max_locations> resident{};
    m_allocations.for_each([&](const allocation& a) {
        for (location l = 0; l < max_locations; ++l) resident[l] += a.valid_pages[l];
    });
    for (const auto& slot : m_slots) {
        std::size_t live = 0;
        m_allocations.for_each([&](const allocation& a) { live += live_segment_pages(a, *slot); });
        if (live != slot->segment_pages_live)
            throw std::logic_error(concat("usm device memory count of device ", slot->index, " is out of date: ",
                                          slot->segment_pages_live, " pages counted, ", live, " in live segments"));
    }
    if (resident != m_resident)
        throw std::logic_error(concat("usm residency count is out of date: ", m_resident[1],
                                      " pages counted on device 0, ", resident[1], " found"));
    m_allocations.for_each([&](const allocation& a) {
        check_allocation(a, m_by_location);
        // Invariant 3: what the MMU allows never exceeds the host state.
        const std::byte* end = a.base + (a.page_count << page_shift);
        std::vector<protection> actual = mmu.protection_of(a.base, end);
        if (m_fault_path == usm::fault_path::userfaultfd) {
            // The VMA stays read-write; userfaultfd decides per PTE.
            const std::vector<bool> present = read_present(a.base, end);
            const std::vector<bool> protected_ = read_uffd_write_protected(a.base, end);
            for (std::size_t p = 0; p < a.page_count; ++p)
                actual[p] = !present[p]     ? protection::none
                            : protected_[p] ? std::min(actual[p], protection::read)
                                            : actual[p];
        }
        for (std::size_t p = 0; p < a.page_count; ++p) {
            if (actual[p] > a.pages[p].host_protection())
                throw std::logic_error(concat("usm invariant 3 broken: page ", p, " of allocation ", a.id, " at ",
                                              static_cast<const void*>(a.page_address(p)), " is ",
                                              actual[p] == protection::read_write ? "writable" : "readable",
                                              " by the host, but its state allows ",
                                              a.pages[p].host_protection() == protection::none ? "nothing" : "reads"));
        }
    });
}

}  // namespace usm::detail
