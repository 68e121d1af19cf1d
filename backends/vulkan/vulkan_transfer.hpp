// backends/vulkan/vulkan_transfer.hpp - batched copies between host memory and
// mirrors on the transfer queue (the contract's upload and download).
#pragma once

#include <memory>
#include <mutex>
#include <span>

#include "backends/vulkan/vulkan_locks.hpp"
#include "backends/vulkan/vulkan_memory.hpp"
#include "backends/vulkan/vulkan_queues.hpp"

namespace usm::detail::vulkan {

/// Moves bytes through two staging pools (one per direction). Each upload or
/// download is recorded into as few transfer submissions as staging allows:
/// one vkCmdCopyBuffer per (staging chunk, mirror) pair with one region per
/// run of adjacent bytes, and vkCmdFillBuffer for fills. A batch larger than
/// `max_submission` staged bytes is split into several submissions, so the
/// copies of one part run while the next is being staged.
///
/// Thread-safe: one lock serializes transfers (the core makes one submitting
/// call at a time anyway); see vulkan_locks.hpp.
class transfer_engine {
public:
    static constexpr vk::DeviceSize max_submission = vk::DeviceSize(64) << 20;

    transfer_engine(std::shared_ptr<const logical_device> device, queue_set& queues);

    /// The contract's upload(): sources are copied into staging before this
    /// returns; the returned point (transfer queue) covers every copy and fill.
    /// Throws invalid_argument / out_of_range for a bad op (before anything
    /// is submitted), or the failing call's error; on throw, parts already
    /// submitted have completed, so nothing is left in flight.
    sync_point upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                      std::span<const sync_point> wait_for, transfer_path path);

    /// The contract's download(): returns once every destination holds the
    /// mirror bytes. Throws like upload(); destinations are then unspecified.
    void download(std::span<const download_op> copies, std::span<const sync_point> wait_for, transfer_path path);

private:
    /// Waits, on the host, for `wait_for` and every transfer submitted so
    /// far: what a queued copy would have come after.
    void wait_before_cpu_copy(std::span<const sync_point> wait_for);

    std::shared_ptr<const logical_device> m_device;
    queue_set& m_queues;
    ranked_mutex<rank_transfer> m_lock;
    staging_pool m_to_device;
    staging_pool m_to_host;
};

}  // namespace usm::detail::vulkan
