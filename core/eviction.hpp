// core/eviction.hpp - giving up blocks of a device that is over its budget:
// which blocks could go (candidates), the policy's order, and the evictions.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "core/allocation_table.hpp"
#include "core/coherence.hpp"
#include "core/device_slot.hpp"
#include "core/inflight.hpp"
#include "core/policy_set.hpp"
#include "core/range_request.hpp"
#include "core/trace.hpp"
#include "usm/stats.hpp"

namespace usm::detail {

class evictor {
public:
    evictor(usm::stats& counters, coherence& states, policy_set& policies, std::size_t block_pages,
            tracer& trace) noexcept
        : m_counters(counters), m_states(states), m_policies(policies), m_block_pages(block_pages), m_trace(trace) {}

    /// What make_room did.
    struct outcome {
        std::size_t pages_left = 0;  ///< pages still over the budget
        /// Some block could not be a candidate because in-flight work at the
        /// device uses it: once that work is done it may go.
        bool busy = false;
    };

    /// Evicts blocks of `dev`, in the eviction policy's order, until
    /// `pages_over` pages are gone: blocks with copies there that `ranges`
    /// do not need and no in-flight work at `dev` uses. Releases segments
    /// left empty. Throws transfer_failed from a write-back, with that block
    /// unchanged and the blocks before it evicted (nothing is lost).
    /// `resident_pages` is what `dev` holds now, for the policy.
    outcome make_room(device_slot& dev, std::size_t resident_pages, std::size_t pages_over,
                      std::span<const range_request> ranges, const allocation_table& table,
                      const inflight_tracker& inflight);

private:
    /// A candidate as the policy sees it, and where it is.
    struct candidates {
        std::vector<eviction_candidate> public_view;
        std::vector<allocation*> owners;  ///< per candidate
        bool busy = false;
    };
    candidates collect(const device_slot& dev, std::span<const range_request> ranges, const allocation_table& table,
                       const inflight_tracker& inflight) const;
    /// Gives up block `block` of `a` on `dev`; returns the pages it held.
    std::size_t evict_block(allocation& a, device_slot& dev, std::size_t block);

    usm::stats& m_counters;
    coherence& m_states;
    policy_set& m_policies;
    std::size_t m_block_pages;
    tracer& m_trace;
};

}  // namespace usm::detail
