// core/mmu_check.hpp - reading back what the MMU really allows, for the
// invariant checks of tests (DESIGN.md invariant 3: the host's protection
// never exceeds what the page's host state allows).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/address_space.hpp"

namespace usm::detail {

/// The mappings of [begin, end) as the kernel reports them in
/// /proc/self/maps, read once (mprotect's view; userfaultfd write protection
/// is read from /proc/self/pagemap by read_uffd_write_protected). Tests only.
class mmu_snapshot {
public:
    mmu_snapshot(const std::byte* begin, const std::byte* end);
    /// The protection of every page of [begin, end), a part of the
    /// snapshot's range (none where nothing is mapped).
    std::vector<protection> protection_of(const std::byte* begin, const std::byte* end) const;

private:
    struct mapping {
        std::uintptr_t from, to;
        protection prot;
    };
    std::vector<mapping> m_mappings;  // sorted by address, as the kernel lists them
};

/// For each page of [begin, end): true when its PTE is present and
/// userfaultfd-write-protected, from /proc/self/pagemap.
std::vector<bool> read_uffd_write_protected(const std::byte* begin, const std::byte* end);

/// For each page of [begin, end): true when its PTE is present.
std::vector<bool> read_present(const std::byte* begin, const std::byte* end);

}  // namespace usm::detail
