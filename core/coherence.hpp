// core/coherence.hpp - the coherence protocol: every change of a page's copy
// states and host protection goes through here.
//
// The protocol keeps DESIGN.md's invariants:
//   1 one writer        - page_state makes "exclusive" mean "the only copy";
//   2 last write seen   - a location gets a copy only from a valid one, and a
//                         writer invalidates all others;
//   3 MMU tells truth   - the view is re-protected from page_state after every
//                         transition, and narrowed *before* a copy is read;
//   4 nothing lost      - a failed transfer leaves states untouched, and
//                         `valid` never becomes empty (core/invariants.cpp
//                         checks it);
//   5 fresh is zero     - new pages carry the zero flag (device: fill);
//   7 no torn pages     - data lands through the alias before the view opens.
// All functions run under the context lock. None of them waits for a kernel:
// they return the work to wait for, and the caller waits without the lock and
// calls again (the state may have changed meanwhile).
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "core/address_space.hpp"
#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "core/inflight.hpp"
#include "core/migration.hpp"
#include "core/policy_set.hpp"
#include "core/range_request.hpp"

namespace usm::detail {

/// What a faulting host instruction did; `unknown` where the CPU does not say
/// (the fault is then served as a read, and a second fault on a readable page
/// as a write).
enum class host_access { read, write, unknown };

class coherence {
public:
    /// `block_pages` (USM_BLOCK) is the most fresh zero pages a host write
    /// fault opens at once (an aligned block; nothing is copied for them).
    coherence(address_space& space, usm::stats& counters, migration& moves, policy_set& policies,
              std::size_t block_pages) noexcept
        : m_space(space), m_counters(counters), m_moves(moves), m_policies(policies), m_block_pages(block_pages) {}

    /// Sets a new allocation's pages to fresh zero, valid on the host, and
    /// protects its view read-only.
    void init_allocation(allocation& a);

    /// Re-protects the view pages [first, end) of `a` from their states,
    /// one mprotect per run of equal protection.
    void apply_host_protection(const allocation& a, std::size_t first, std::size_t end);

    /// What resolve_host_fault did.
    struct fault_outcome {
        std::vector<pending_wait> waits;  ///< non-empty: wait for these, then call again
        bool changed = false;             ///< a state changed (counted as a host fault)
    };

    /// Makes page `page` of `a` host-readable (read) or host-exclusive
    /// (write), with what the read-ahead policy adds. Returns the in-flight
    /// work that must complete first, or whether anything had to change (a
    /// fault on a page the host may already touch as asked changes nothing:
    /// another thread resolved it, or the userfaultfd path only had to map
    /// it). Throws usm::error (transfer_failed, device_lost) with the page's
    /// state unchanged.
    fault_outcome resolve_host_fault(allocation& a, std::size_t page, host_access kind,
                                     const inflight_tracker& inflight);

    /// Makes pages [first, end) of `a` host-readable (read) or host-exclusive
    /// (write) at once, with one download batch per device holding missing
    /// pages and nothing brought beyond the range. Same contract as
    /// resolve_host_fault.
    fault_outcome resolve_host_range(allocation& a, std::size_t first, std::size_t end, bool write,
                                     const inflight_tracker& inflight);

    /// The in-flight work on other locations that a launch at `where` over
    /// `ranges` must wait for.
    std::vector<pending_wait> launch_conflicts(std::span<const range_request> ranges, location where,
                                               const inflight_tracker& inflight) const;

    /// Makes every page of `ranges` valid on `dev` ahead of a launch: copies
    /// pages held only by other devices back to the host, narrows the host's
    /// protection to what the launch allows (so no host write races the copy),
    /// then submits one upload batch of copies and fills. Returns the batch's
    /// completion point (empty when nothing moved). States do not change until
    /// commit_launch. On throw, protections are restored and nothing is lost.
    /// `extra` copies ride in the same batch (the device page table's changed
    /// entries and the launch's space block).
    sync_point stage_for_launch(device_slot& dev, std::span<const range_request> ranges,
                                std::span<const upload_op> extra = {});

    /// The launch was submitted: pages read become shared with `dev`, pages
    /// written become exclusive to it. `done` is the launch's point.
    void commit_launch(device_slot& dev, std::span<const range_request> ranges, sync_point done);

    /// The launch was not submitted: re-protect the host view from the
    /// (unchanged) states.
    void abandon_launch(std::span<const range_request> ranges) noexcept;

    /// Drops `dev`'s copies of pages [first, end) of `a`, writing back first
    /// the pages only `dev` holds. Returns {pages dropped, pages written
    /// back}. On throw (the write-back), nothing changed.
    std::pair<std::size_t, std::size_t> drop_device_copies(allocation& a, device_slot& dev, std::size_t first,
                                                           std::size_t end);

private:
    /// Opens the fresh (zero, host-only) pages of the aligned block around
    /// `page` for writing: a first write to fresh memory copies nothing.
    void open_fresh_block(allocation& a, std::size_t page);
    /// Brings `page` back to the host from a device, with the pages the
    /// read-ahead policy adds (just the page when a kernel writes them).
    void bring_back(allocation& a, std::size_t page, bool write, const inflight_tracker& inflight);
    /// Narrows the host view of `ranges` to what a launch at `where` allows.
    void narrow_for_launch(location where, std::span<const range_request> ranges);

    address_space& m_space;
    usm::stats& m_counters;
    migration& m_moves;
    policy_set& m_policies;
    std::size_t m_block_pages;
};

}  // namespace usm::detail
