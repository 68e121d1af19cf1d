// core/mmu_check.hpp - reading back what the MMU really allows, for the
// invariant checks of tests (DESIGN.md invariant 3: the host's protection
// never exceeds what the page's host state allows).
#pragma once

#include <cstddef>
#include <vector>

#include "core/address_space.hpp"

namespace usm::detail {

/// The protection of every page of [begin, end) as the kernel reports it in
/// /proc/self/maps (mprotect's view; userfaultfd write protection is read
/// from /proc/self/pagemap by uffd_write_protected). Slow: tests only.
std::vector<protection> read_mmu_protection(const std::byte* begin, const std::byte* end);

/// For each page of [begin, end): true when its PTE is present and
/// userfaultfd-write-protected, from /proc/self/pagemap.
std::vector<bool> read_uffd_write_protected(const std::byte* begin, const std::byte* end);

/// For each page of [begin, end): true when its PTE is present.
std::vector<bool> read_present(const std::byte* begin, const std::byte* end);

}  // namespace usm::detail
