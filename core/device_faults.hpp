// core/device_faults.hpp - what the rounds of a launch through the device
// page table share (core/device_faults.cpp, docs/device-faults.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace usm::detail {

/// Pages a device fault asked for, by allocation id: the context lock is let
/// go between rounds, and the allocation may be freed meanwhile.
struct serviced_range {
    const std::byte* base = nullptr;
    std::uint64_t id = 0;
    std::size_t first = 0, end = 0;
    bool writes = false;
};

/// One launch through the page table, over all its rounds.
struct table_launch {
    bool anywhere = false;                 ///< usm::any (else usm::declared)
    std::vector<serviced_range> serviced;  ///< pages earlier rounds' device faults brought
};

}  // namespace usm::detail
