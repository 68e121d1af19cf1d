// core/thrashing.hpp - noticing blocks that keep coming back to a device, and
// doing what the thrashing policy says about them.
//
// Two patterns are caught, per block and device (block_record):
//   * bouncing: eviction took the block and it is needed again soon, "soon"
//     being within `soon_evictions` budgets' worth of evictions on the
//     device: the working set cycles through a few times the budget, and LRU
//     evicts every block before its next use;
//   * hand-overs: a write elsewhere (the host's, another device's) took the
//     block and the device needs it back: host and device take turns.
// The policy (include/usm/policy.hpp) decides what a return leads to; this
// file carries it out: in-place access (as if advised accessed_by) or pinning.
#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>

#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "core/policy_set.hpp"
#include "usm/stats.hpp"

namespace usm::detail {

class thrashing_detector {
public:
    /// A block back within this many budgets' worth of evictions since it
    /// left is "soon" (see above).
    static constexpr std::size_t soon_evictions = 4;
    /// A pinned block stays for this many budgets' worth of evictions: long
    /// enough for a cycle of a few budgets to come round again.
    static constexpr std::size_t pin_evictions = 8;

    thrashing_detector(usm::stats& counters, policy_set& policies, std::size_t block_pages) noexcept
        : m_counters(counters), m_policies(policies), m_block_pages(block_pages) {}

    /// Block `block` of `a` is needed on `dev` and lacks pages there: counts
    /// a hand-over or a bounce, asks the policy, and carries out its answer.
    /// `pinned` caches the device's pinned blocks over one reserve: `table`
    /// is scanned for them the first time a return is asked about. Under the
    /// context lock.
    void note_return(allocation& a, std::size_t block, device_slot& dev, const allocation_table& table,
                     std::optional<std::size_t>& pinned);

private:
    /// Carries out `action` for block `block` of `a` on `dev`; false when it
    /// was none, or could not be taken (in place where the device cannot).
    bool act(thrash_action action, allocation& a, std::size_t block, device_slot& dev);
    /// `dev`'s budget in blocks (at least one).
    std::size_t budget_blocks(const device_slot& dev) const noexcept {
        return std::max<std::size_t>(dev.budget_pages / m_block_pages, 1);
    }
    /// Blocks pinned on `dev` now, counted once into `pinned`.
    std::size_t pinned_blocks(const device_slot& dev, const allocation_table& table,
                              std::optional<std::size_t>& pinned) const;
    /// The context-wide base of a block_return for block `block` of `a`.
    block_return describe(const allocation& a, std::size_t block, const device_slot& dev, return_cause why,
                          std::uint32_t times) const;

    usm::stats& m_counters;
    policy_set& m_policies;
    std::size_t m_block_pages;
};

}  // namespace usm::detail
