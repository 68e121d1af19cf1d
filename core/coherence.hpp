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
//                         `valid` never becomes empty (asserted);
//   5 fresh is zero     - new pages carry the zero flag (device: fill);
//   7 no torn pages     - data lands through the alias before the view opens.
// All functions run under the context lock. None of them waits for a kernel:
// they return the work to wait for, and the caller waits without the lock and
// calls again (the state may have changed meanwhile).
#pragma once

#include <cstddef>
#include <span>
#include <utility>
#include <vector>

#include "core/address_space.hpp"
#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "core/inflight.hpp"
#include "core/trace.hpp"
#include "usm/stats.hpp"

namespace usm::detail {

/// What a faulting host instruction did; `unknown` where the CPU does not say
/// (the fault is then served as a read, and a second fault on a readable page
/// as a write).
enum class host_access { read, write, unknown };

/// A declared range of a launch, resolved to pages of one allocation.
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

class coherence {
public:
    /// `devices[l]` is the device at location l (null at the host's index).
    /// `block_pages` (USM_BLOCK) is the block: the most fresh zero pages a
    /// host write fault opens, and the unit of device residency (LRU,
    /// eviction, bouncing).
    /// at once (an aligned block; nothing is copied for them).
    /// `thrash_in_place`: blocks caught bouncing in and out of a device that
    /// can reach host memory are used in place there (else pinned).
    coherence(address_space& space, usm::stats& counters, std::span<device_slot* const> devices,
              std::size_t block_pages, bool thrash_in_place, tracer& trace) noexcept
        : m_space(space),
          m_counters(counters),
          m_devices(devices),
          m_block_pages(block_pages),
          m_thrash_in_place(thrash_in_place),
          m_trace(trace) {}

    /// Creates the segments of `dev`'s copy of `a` that hold pages
    /// [first, end) and do not exist yet. Throws out_of_memory or
    /// unsupported from the backend; segments made before that stay (they
    /// hold no valid page, so eviction may release them).
    void ensure_segments(allocation& a, device_slot& dev, std::size_t first, std::size_t end);

    /// The segment of `a` at location `l` that holds byte `offset`, and the
    /// offset within it. The segment must exist.
    std::pair<device_mirror*, std::size_t> segment_at(const allocation& a, location l, std::size_t offset) const;

    /// Pages in `a`'s live segments at location `l`.
    std::size_t live_segment_pages(const allocation& a, location l) const noexcept;

    /// Makes room on `dev` for `ranges` ahead of a launch or prefetch named
    /// `operation`: marks their blocks used (LRU), notices blocks coming back
    /// soon after they were evicted (pinning those that keep bouncing), then
    /// evicts least recently used blocks that no in-flight work at `dev` uses
    /// until the pages `ranges` lack there fit its budget. Returns in-flight
    /// work to wait for when only busy blocks could go (call again after).
    /// Throws out_of_memory when `ranges` alone exceed the budget, with
    /// nothing changed; transfer_failed from a write-back (nothing lost).
    std::vector<pending_wait> reserve(const char* operation, device_slot& dev, std::span<const range_request> ranges,
                                      const allocation_table& table, const inflight_tracker& inflight);

    /// Sets a new allocation's pages to fresh zero, valid on the host, and
    /// protects its view read-only.
    void init_allocation(allocation& a);

    /// What resolve_host_fault did.
    struct fault_outcome {
        std::vector<pending_wait> waits;  ///< non-empty: wait for these, then call again
        bool changed = false;             ///< a state changed (counted as a host fault)
    };

    /// Makes page `page` of `a` host-readable (read) or host-exclusive
    /// (write). Returns the in-flight work that must complete first, or
    /// whether anything had to change (a fault on a page the host may already
    /// touch as asked changes nothing: another thread resolved it, or the
    /// userfaultfd path only had to map it). Throws usm::error
    /// (transfer_failed, device_lost) with the page's state unchanged.
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

    /// The launch was submitted: pages read become shared with `where`, pages
    /// written become exclusive to it. `done` is the launch's point.
    void commit_launch(location where, std::span<const range_request> ranges, sync_point done);

    /// The launch was not submitted: re-protect the host view from the
    /// (unchanged) states.
    void abandon_launch(std::span<const range_request> ranges) noexcept;

    /// Checks invariants 1 and 4 on every page of `a` (every page has a valid
    /// copy; a zero page is valid on the host). Throws std::logic_error naming
    /// the page when broken. Cheap enough for tests and debug builds.
    void check_invariants(const allocation& a) const;

private:
    /// Re-protects the view pages [first, end) of `a` from their states,
    /// one mprotect per run of equal protection.
    void apply_host_protection(const allocation& a, std::size_t first, std::size_t end);
    /// The pages [first, end) the density rule brings back on a host fault on
    /// `page`: the largest aligned region around it, up to the block size,
    /// that is already more than half host-valid. resolve_host_fault widens
    /// it further for sweeps.
    std::pair<std::size_t, std::size_t> density_region(const allocation& a, std::size_t page) const;
    /// Downloads pages [first, end) of `a` that are not host-valid from a
    /// device holding them, and marks them host-valid: shared, or moved home
    /// (host only) where their preferred location is the host.
    void fetch_to_host(allocation& a, std::span<const std::size_t> pages);
    /// Advises block `block` of `a` accessed_by `l`: later launches there
    /// use it in host memory (counted in blocks_in_place).
    void turn_in_place(allocation& a, std::size_t block, location l);
    /// Gives up block `block` of `a` on `dev`: pages only `dev` holds are
    /// written back first; the others are dropped there.
    void evict_block(allocation& a, device_slot& dev, std::size_t block);
    /// Releases `dev`'s segments of `a` that hold no valid page and that no
    /// in-flight work at `dev` uses.
    void release_empty_segments(allocation& a, device_slot& dev, const inflight_tracker& inflight);

    address_space& m_space;
    usm::stats& m_counters;
    std::span<device_slot* const> m_devices;
    std::size_t m_block_pages;
    bool m_thrash_in_place;
    tracer& m_trace;
};

}  // namespace usm::detail
