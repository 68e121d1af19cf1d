// usm/stats.hpp - counters of what usm did on a context's behalf.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace usm {

/// A snapshot of a context's counters since creation (or the last
/// context::reset_stats). "to device" and "to host" count migrated data;
/// zero-filled pages are counted apart, since nothing moved.
struct stats {
    std::uint64_t host_read_faults = 0;   ///< host reads that needed a page brought back or granted
    std::uint64_t host_write_faults = 0;  ///< host writes that needed exclusive ownership
    std::uint64_t pages_to_device = 0;    ///< pages copied host -> device
    std::uint64_t bytes_to_device = 0;
    std::uint64_t pages_to_host = 0;  ///< pages copied device -> host
    std::uint64_t bytes_to_host = 0;
    std::uint64_t pages_read_ahead = 0;    ///< of pages_to_host, those a host fault brought back ahead of use
    std::uint64_t pages_zero_filled = 0;   ///< fresh pages made valid on a device by a fill, not a copy
    std::uint64_t transfer_batches = 0;    ///< transfer-queue submissions that carried migrations
    std::uint64_t launches = 0;            ///< kernels launched
    std::uint64_t kernel_waits = 0;        ///< times the host blocked on an in-flight kernel
    std::uint64_t blocks_evicted = 0;      ///< blocks (USM_BLOCK) a device gave up to stay within its budget
    std::uint64_t pages_evicted = 0;       ///< pages those blocks held on the device
    std::uint64_t pages_written_back = 0;  ///< of pages_evicted, those copied home (the device held them alone)
    std::uint64_t blocks_pinned = 0;       ///< blocks found bouncing in and out of a device, then kept there
    std::uint64_t pages_in_place = 0;      ///< pages launches accessed in host memory (advice::accessed_by), not moved
    std::uint64_t blocks_in_place = 0;     ///< blocks found handed back and forth, then accessed in place
    std::uint64_t device_faults = 0;    ///< accesses kernels recorded through the page table (usm::any, usm::declared)
    std::uint64_t replays = 0;          ///< times a replayable kernel ran again after its faults were serviced
    std::uint64_t allocations = 0;      ///< live allocations
    std::uint64_t bytes_allocated = 0;  ///< live bytes, as requested

    /// One line, `key=value` pairs, for logs and sample output.
    std::string to_string() const;
};

std::ostream& operator<<(std::ostream& os, const stats& s);

}  // namespace usm
