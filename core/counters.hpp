// core/counters.hpp - counting into usm::stats three ways: the context's,
// one allocation's (context::stats(p)) and one device's (device::stats()).
#pragma once

#include <cstdint>

#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "usm/stats.hpp"

namespace usm::detail {

/// Adds `n` to `field` of `context`, and of `a` and `dev` where not null.
/// Under the context lock.
inline void count(usm::stats& context, std::uint64_t usm::stats::*field, std::uint64_t n, allocation* a,
                  device_slot* dev) noexcept {
    context.*field += n;
    if (a != nullptr) a->counters.*field += n;
    if (dev != nullptr) dev->counters.*field += n;
}

}  // namespace usm::detail
