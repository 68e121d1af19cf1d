// core/context_impl.hpp - what a usm::context is made of.
//
// The members are the layers of core/: the address space and fault paths
// below, the allocation table and page states in the middle, and the engine
// over them: coherence (state transitions and host protection), migration
// (transfer batches), residency (budgets: thrashing detection and eviction),
// each asking the context's policies (policy_set). context_impl's own
// members are the operations of the public API, in files by concern:
// context.cpp (creation, allocation), host_faults.cpp, launch.cpp,
// device_faults.cpp, prefetch.cpp, advice.cpp, invariants.cpp, kernels.cpp.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "core/address_space.hpp"
#include "core/allocation_table.hpp"
#include "core/coherence.hpp"
#include "core/device_slot.hpp"
#include "core/eviction.hpp"
#include "core/fault_signal.hpp"
#include "core/fault_uffd.hpp"
#include "core/inflight.hpp"
#include "core/lock_order.hpp"
#include "core/migration.hpp"
#include "core/policy_set.hpp"
#include "core/range_request.hpp"
#include "core/residency.hpp"
#include "core/thrashing.hpp"
#include "core/trace.hpp"
#include "usm/context.hpp"

namespace usm::detail {

/// context_options after the USM_* environment variables are applied.
context_options resolve_options(const context_options& given);

/// How many times device `index` of backend `backend_name`, called `name`, is
/// picked by the USM_DEVICE-style `filter` (see context_options::device): 0
/// when not selected, 1 for an empty filter, and one per matching item, each
/// opening the device again as a separate logical device.
std::size_t device_selections(const std::string& filter, const char* backend_name, std::size_t index,
                              const std::string& name);

struct launch_plan;
struct table_launch;

class context_impl final : public fault_target {
public:
    explicit context_impl(const context_options& options);
    ~context_impl();
    context_impl(const context_impl&) = delete;
    context_impl& operator=(const context_impl&) = delete;

    std::span<const std::unique_ptr<device_slot>> devices() const noexcept { return m_slots; }

    void* alloc(std::size_t bytes, const placement& where);
    void free(const void* p);
    bool owns(const void* p) const noexcept;

    kernel load_kernel(device_slot& dev, const spirv& code, std::string_view entry);
    kernel load_kernel(device_slot& dev, const opencl_c& code, std::string_view entry);
    event launch(device_slot& dev, const kernel& k, grid g, group l, std::span<const launch_arg> args);

    usm::stats stats() const;
    usm::stats allocation_stats(const void* p) const;
    usm::stats device_stats(const device_slot& dev) const;
    void reset_stats();

    /// Checks the page-state invariants of every allocation, the summaries
    /// and what the MMU allows (tests; core/invariants.cpp).
    void check_invariants() const;

    bool on_host_fault(void* address, host_access kind) noexcept override;
    void host_access_range(const void* p, std::size_t bytes, access a);
    usm::fault_path fault_handling() const noexcept { return m_fault_path; }
    /// Moves [p, p + bytes) to `to` (the host when null); see context::prefetch.
    event prefetch(const void* p, std::size_t bytes, device_slot* to);
    /// See context::advise; `where` null and `host` false: no location.
    void advise(const void* p, std::size_t bytes, advice a, device_slot* where, bool host);
    range_info query(const void* p, std::size_t bytes) const;
    /// Bytes valid on `dev` now.
    std::size_t resident_bytes(const device_slot& dev) const;

private:
    using lock_type = std::unique_lock<context_mutex>;

    /* --- context.cpp ---------------------------------------------------- */
    void open_backends();
    void open_device(driver& drv, const char* backend_name, std::size_t index, std::vector<std::string>& reasons);
    void check_process(const char* operation) const;
    /// The live allocation holding all of [p, p + bytes); throws
    /// not_a_usm_pointer or out_of_range naming `operation`. Under the lock.
    allocation& locate(const char* operation, const void* p, std::size_t bytes) const;
    /// Waits (without the lock) for `waits`; returns with the lock held again.
    void wait_unlocked(lock_type& lock, std::vector<pending_wait>& waits);
    /// Makes a new allocation placed on `dev` valid (zero) there.
    void place_on_device(lock_type& lock, allocation& a, device_slot& dev);
    /// Undoes the residency counts of an allocation that goes away.
    void forget_residency(const allocation& a);
    void free_locked(allocation& a);

    /* --- host_faults.cpp ---------------------------------------------------- */
    /// Makes the page holding `address` host-accessible as `kind`, waiting
    /// as needed. False when no allocation holds it. Throws on failure.
    /// On the userfaultfd path with `map`, also maps the page (and its
    /// neighbours in the same block that the host may touch the same way).
    /// `thread` is the faulting thread's trace track (0: the calling one).
    bool serve_host_access(void* address, host_access kind, bool count, bool map = false, std::uint64_t thread = 0);
    void map_around(const allocation& a, std::size_t page);
    /// Makes [p, p + bytes) host-valid (or host-exclusive), waiting as needed.
    void make_host_valid(const char* operation, const void* p, std::size_t bytes, bool write);
    /// The userfaultfd handler thread's entry.
    void serve_uffd_fault(const uffd_region::fault& f) noexcept;

    /* --- launch.cpp ------------------------------------------------------- */
    /// Marks the ranges `dev` accesses in place: those of each allocation
    /// whose pages in the launch are all advised accessed_by `dev`, on a
    /// device that can (importing the allocation's host memory the first
    /// time; a refused import falls back to migration, logged once).
    void choose_in_place(device_slot& dev, std::vector<range_request>& ranges);
    /// Resolves a launch's memory arguments to page ranges; throws on bad ones.
    std::vector<range_request> resolve_ranges(const device_slot& dev, std::span<const launch_arg> args) const;
    /// The merged ranges of a launch, with room made on `dev` and every
    /// conflicting kernel elsewhere waited for (the lock is let go while
    /// waiting, and the ranges resolved again after).
    std::vector<range_request> settle_ranges(lock_type& lock, device_slot& dev, std::span<const launch_arg> args,
                                             const table_launch* table);
    /// Stages, binds and submits one launch (and, with `table`, the page
    /// table in step with it); returns its point. Under the lock.
    sync_point submit_launch(lock_type& lock, device_slot& dev, const kernel& k, dims grid_dims, dims group_dims,
                             grid g, std::span<const launch_arg> args, table_launch* table);
    /// The backend arguments of `plan`'s launch, in declaration order.
    void bind_args(device_slot& dev, std::span<const launch_arg> args, launch_plan& plan);
    /// What a launch on `dev` comes after: its staging and earlier uploads
    /// into what it uses.
    std::vector<sync_point> launch_dependencies(const device_slot& dev, const launch_plan& plan) const;
    /// Submits `plan`'s kernel, tracked from the moment it is queued.
    sync_point submit_tracked(device_slot& dev, const kernel& k, dims grid_dims, dims group_dims, launch_plan& plan,
                              std::span<const sync_point> after);
    /// A launch that failed after its staging batch was queued waits for the
    /// batch (without the lock); the device's page table is then unknown.
    void unwind_staging(lock_type& lock, device_slot& dev, const launch_plan& plan) noexcept;

    /* --- device_faults.cpp -------------------------------------------------- */
    /// A launch that takes the page table: submits, waits, reads the faults
    /// the kernel recorded, services them and runs it again while replayable.
    event launch_through_table(device_slot& dev, const kernel& k, dims grid_dims, dims group_dims, grid g,
                               std::span<const launch_arg> args, table_launch& table, bool replayable);
    /// Waits (without the lock) for a launch through the table, then reads
    /// its fault log back: the records it holds, and in `fault_count` how
    /// many the kernel made (more than the log holds when it overflowed).
    std::vector<fault_record> await_faults(lock_type& lock, device_slot& dev, sync_point done,
                                           std::uint32_t& fault_count);

    pid_t m_pid;
    context_options m_options;
    std::unique_ptr<address_space> m_space;
    std::unique_ptr<uffd_region> m_uffd;  // destroyed before m_space is unmapped
    std::vector<std::unique_ptr<device_slot>> m_slots;
    std::array<device_slot*, max_locations> m_by_location{};

    tracer m_trace;                // before everything that records into it
    mutable context_mutex m_lock;  // core/lock_order.hpp, level 2
    allocation_table m_allocations;
    std::array<std::size_t, max_locations> m_resident{};  // valid pages per location, all allocations
    inflight_tracker m_inflight;
    usm::stats m_stats;
    policy_set m_policies;
    migration m_migration;
    coherence m_coherence;
    thrashing_detector m_thrashing;
    evictor m_evictor;
    residency m_residency;
    std::uint64_t m_next_id = 1;
    bool m_registered = false;
    usm::fault_path m_fault_path = usm::fault_path::signal;
};

}  // namespace usm::detail
