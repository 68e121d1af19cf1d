// core/range_request.hpp - a declared range of a launch or prefetch, resolved
// to pages of one allocation.
#pragma once

#include <cstddef>
#include <vector>

#include "core/allocation_table.hpp"

namespace usm::detail {

struct range_request {
    allocation* alloc = nullptr;
    std::size_t first_page = 0;
    std::size_t end_page = 0;
    bool reads = false;
    bool writes = false;
    /// The device accesses these pages in host memory (its import of the
    /// allocation), not in its mirror: nothing is uploaded, and the device's
    /// copy is the host memory (page_state::in_place).
    bool in_place = false;
};

/// Merges requests that overlap on one allocation into disjoint ranges whose
/// access is the union of the overlapping ones; sorted by allocation and page.
std::vector<range_request> merge_requests(std::vector<range_request> requests);

}  // namespace usm::detail
