// core/migration.hpp - transfer batches: building them from page states,
// choosing their copy path, issuing them, and counting what moved.
//
// Migration moves bytes and, for fetches home, records the host's new copy;
// which pages move, and the protections around them, are coherence's
// (core/coherence.hpp). Everything here runs under the context lock.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "core/address_space.hpp"
#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "core/policy_set.hpp"
#include "core/range_request.hpp"
#include "core/trace.hpp"
#include "usm/stats.hpp"

namespace usm::detail {

class migration {
public:
    /// `devices[l]` is the device at location l (null at the host's index).
    migration(address_space& space, usm::stats& counters, std::span<device_slot* const> devices, policy_set& policies,
              tracer& trace) noexcept
        : m_space(space), m_counters(counters), m_devices(devices), m_policies(policies), m_trace(trace) {}

    /// Copies the pages of `a` listed in `pages` that the host lacks from a
    /// device holding each (one download batch per device), and marks them
    /// host-valid: shared, or moved home (host only) where they prefer the
    /// host. Pages a device holds in place are in host memory already.
    /// Throws transfer_failed or device_lost with the states unchanged for
    /// the batch that failed (invariant 4).
    void fetch_to_host(allocation& a, std::span<const std::size_t> pages);

    /// One upload batch to `dev` making every page of `ranges` that lacks a
    /// copy there valid in its mirror (copies from host memory, fills for
    /// zero pages), plus the `extra` copies (the page table's entries).
    /// Segments must exist and host memory must be current. Returns the
    /// batch's point (empty when nothing was queued: nothing to do, or CPU
    /// copies, already complete). States do not change. Throws from the
    /// backend, with nothing of the batch still reading host memory.
    sync_point upload_for(device_slot& dev, std::span<const range_request> ranges,
                          std::span<const upload_op> extra = {});

    /// One download batch from `dev`, on the path the copy-path policy
    /// chooses, after `wait_for`. Synchronous (device_interface.hpp).
    void download(device_slot& dev, std::span<const download_op> ops, std::span<const sync_point> wait_for);

private:
    struct upload_plan;
    /// Which way a batch of `bytes` to or from `dev` goes.
    transfer_path path_for(const device_slot& dev, transfer_direction direction, std::size_t bytes);
    /// The copies and fills of `ranges` for `dev`, per range the pages
    /// copied and filled.
    upload_plan plan_upload(const device_slot& dev, std::span<const range_request> ranges) const;
    /// Downloads the pages in `pages` that the host lacks and whose copy
    /// comes from device location `from`, marking them host-valid.
    void fetch_from(allocation& a, std::span<const std::size_t> pages, location from);

    address_space& m_space;
    usm::stats& m_counters;
    std::span<device_slot* const> m_devices;
    policy_set& m_policies;
    tracer& m_trace;
};

}  // namespace usm::detail
