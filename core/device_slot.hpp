// core/device_slot.hpp - a device as a context holds it, and the states behind
// the public kernel and event handles.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/device_interface.hpp"
#include "core/page_state.hpp"
#include "core/page_table.hpp"
#include "usm/stats.hpp"

namespace usm::detail {

class context_impl;

/// One opened device of a context. Lives as long as the context.
struct device_slot {
    context_impl* owner = nullptr;
    std::shared_ptr<device_backend> backend;
    location where = 1;     ///< its bit in page_state::valid
    std::size_t index = 0;  ///< position in context::devices()
    /// Residency limit in pages (context_options::device_budget), and the
    /// pages of one device-memory segment (context_options::segment_size).
    std::size_t budget_pages = 0;
    std::size_t segment_pages = 0;
    /// Eviction's clocks, under the context lock: `clock` advances at every
    /// launch or prefetch here, `evictions` at every block evicted from here.
    std::uint64_t clock = 0;
    std::uint64_t evictions = 0;
    /// Pages of device memory in live segments (all allocations): what the
    /// driver really holds, where the budget counts valid pages.
    std::size_t segment_pages_live = 0;
    /// What this device did (device::stats()), under the context lock.
    usm::stats counters{};
    /// The page table behind usm::any and usm::declared launches here.
    device_page_table table;
};

/// Behind usm::kernel. Holds the device alive, so a kernel may outlive its
/// context; the compiled kernel goes first (members die in reverse order).
struct kernel_state {
    std::shared_ptr<device_backend> backend;
    device_slot* slot = nullptr;
    std::unique_ptr<compiled_kernel> compiled;
};

/// Behind usm::event.
struct event_state {
    std::shared_ptr<device_backend> backend;
    sync_point point;
};

}  // namespace usm::detail
