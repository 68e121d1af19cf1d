// backends/vulkan/vulkan_staged_copy.hpp - the staging loop uploads and
// downloads share: cutting copies into slices of a staging pool, recording
// them into transfer submissions, and submitting when a submission is full or
// staging runs out.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "backends/vulkan/vulkan_memory.hpp"
#include "backends/vulkan/vulkan_queues.hpp"

namespace usm::detail::vulkan {

/// One validated, non-empty op: bytes of a mirror and where they come from
/// (upload) or go to (download).
struct piece {
    mirror* target = nullptr;
    vk::DeviceSize offset = 0;
    const std::byte* source = nullptr;  // upload
    std::byte* destination = nullptr;   // download
    vk::DeviceSize bytes = 0;
};

/// Orders a transfer batch after the transfer batches submitted before it on
/// the same queue (write-after-write and read-after-write between uploads and
/// downloads that the core did not chain with wait_for).
void transfer_barrier(vk::CommandBuffer commands);

/// Collects copy regions between staging chunks and mirrors for one
/// submission and records them as one vkCmdCopyBuffer per (chunk, mirror).
class copy_recorder {
public:
    /// Whether bytes at `mirror_offset` of `target` would extend the last region.
    bool continues(vk::Buffer target, vk::DeviceSize mirror_offset) const noexcept;
    void add(vk::Buffer staging, vk::Buffer target, vk::DeviceSize staging_offset, vk::DeviceSize mirror_offset,
             vk::DeviceSize bytes);
    vk::DeviceSize staged() const noexcept { return m_staged; }
    /// Records the collected regions into `commands` and starts afresh.
    void record(vk::CommandBuffer commands, staging_pool::direction dir);

private:
    struct region {
        vk::Buffer staging;
        vk::Buffer target;
        vk::DeviceSize staging_offset;
        vk::DeviceSize mirror_offset;
        vk::DeviceSize bytes;
    };
    std::vector<region> m_regions;
    vk::DeviceSize m_staged = 0;
};

/// One transfer batch on the queue, as it is recorded. stage() cuts pieces
/// into slices of `pool` and records copies between them and the mirrors,
/// in submissions of at most `max_submission` staged bytes, so the copies of
/// one part run while the next is staged. When staging is full of work in
/// flight, what is recorded is submitted and the oldest busy chunk waited
/// for. Every submission waits for `wait_for`: each one reads or writes
/// mirrors that `wait_for` may still be using.
///
/// The direction's own part is in the hooks below. After a throw from any
/// step the caller calls abandon(); nothing is then left in flight.
/// Not thread-safe: the transfer engine's lock guards it and the pool.
class staged_copy {
public:
    staged_copy(const logical_device& device, queue_set& queues, staging_pool& pool, staging_pool::direction dir,
                vk::DeviceSize max_submission, std::span<const sync_point> wait_for, const char* what);
    virtual ~staged_copy() = default;
    staged_copy(const staged_copy&) = delete;
    staged_copy& operator=(const staged_copy&) = delete;

    /// The command buffer being recorded, for commands before the copies
    /// (an upload's fills); mark them with recorded_commands().
    vk::CommandBuffer commands() const noexcept { return m_batch.commands(); }
    void recorded_commands() noexcept { m_dirty = true; }

    /// Stages and records every piece, submitting along the way.
    void stage(std::span<const piece> pieces);
    /// Submits what is recorded. Returns the point of the batch's last
    /// submission (empty when nothing was submitted).
    sync_point finish();
    /// After a throw: drops the reservations of the part not submitted and
    /// waits for the parts submitted, ignoring failure.
    void abandon() noexcept;
    /// Gives idle staging back to the driver; never throws (housekeeping).
    void trim_staging() noexcept;

protected:
    /// The slice `s` of staging is reserved for `s.bytes` of `p` from `done`
    /// bytes in: an upload copies the source into it, a download notes where
    /// its bytes land.
    virtual void slice_reserved(const piece& p, vk::DeviceSize done, const staging_pool::slice& s) = 0;
    /// The transfer value up to which staging may be rewound.
    virtual std::uint64_t reusable_until() { return m_queues.completed(queue_id::transfer); }
    /// The slices reserved since the previous submission belong to the
    /// submission signalling `value`.
    virtual void submitted(std::uint64_t value) { (void)value; }

    queue_set& queues() const noexcept { return m_queues; }

private:
    void open();
    void submit();
    /// Bytes of `p` staged from `done` bytes in: a slice, or 0 after waiting
    /// for staging to come free.
    vk::DeviceSize stage_slice(const piece& p, vk::DeviceSize done);
    void wait_for_staging();

    const logical_device& m_device;
    queue_set& m_queues;
    staging_pool& m_pool;
    staging_pool::direction m_direction;
    vk::DeviceSize m_max_submission;
    std::span<const sync_point> m_wait_for;
    const char* m_what;
    std::function<std::uint64_t()> m_reusable_until;
    command_batch m_batch;
    copy_recorder m_recorder;
    bool m_dirty = false;  // the open batch holds commands
    sync_point m_last{};
};

}  // namespace usm::detail::vulkan
