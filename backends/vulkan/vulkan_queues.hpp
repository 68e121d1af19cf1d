// backends/vulkan/vulkan_queues.hpp - the compute and transfer queues, their
// timeline semaphores, command buffers and submission.
//
// /* --- sync points --- */
//
// Each queue (compute, transfer) signals its own timeline semaphore with
// 1, 2, 3, ... in submission order. A usm sync_point is {queue, value}:
// queue 0 = compute, 1 = transfer. A signal also covers everything submitted
// earlier on that VkQueue, so the last value of a batch covers the whole
// batch.
//
// Locks: a lane lock per queue and a lock per VkQueue; see vulkan_locks.hpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "backends/vulkan/vulkan_locks.hpp"
#include "backends/vulkan/vulkan_logical_device.hpp"
#include "core/device_interface.hpp"

namespace usm::detail::vulkan {

enum class queue_id : std::uint32_t { compute = 0, transfer = 1 };

class queue_set;

/// A command buffer being recorded for one queue, from queue_set::begin().
/// Move-only. Dropped without submit (an exception while recording), its
/// command buffer goes back to the queue's free list.
class command_batch {
public:
    command_batch() = default;
    command_batch(command_batch&& other) noexcept { *this = std::move(other); }
    command_batch& operator=(command_batch&& other) noexcept;
    ~command_batch() { release(); }

    explicit operator bool() const noexcept { return m_owner != nullptr; }
    vk::CommandBuffer commands() const noexcept { return m_commands; }
    queue_id queue() const noexcept { return m_queue; }

private:
    friend class queue_set;
    command_batch(queue_set* owner, queue_id queue, vk::CommandBuffer commands) noexcept
        : m_owner(owner), m_queue(queue), m_commands(commands) {}
    void release() noexcept;

    queue_set* m_owner = nullptr;
    queue_id m_queue = queue_id::compute;
    vk::CommandBuffer m_commands;
};

/// The two queues of one device and their timelines.
class queue_set {
public:
    /// `compute` and `transfer` may be the same VkQueue (then submissions to
    /// either share one lock). Creates both timeline semaphores and command
    /// pools; throws the failing call's error, leaving nothing created.
    queue_set(std::shared_ptr<const logical_device> device, vk::Queue compute, vk::Queue transfer);
    ~queue_set();
    queue_set(const queue_set&) = delete;
    queue_set& operator=(const queue_set&) = delete;

    /// A command buffer in the recording state for `queue`, recycled from
    /// earlier submissions whose timeline value has been reached.
    command_batch begin(queue_id queue);

    /// Ends and submits `batch` after every point of `wait_for`; signals and
    /// returns the next value of the batch's queue. On throw nothing was
    /// submitted and the batch is released.
    sync_point submit(command_batch& batch, std::span<const sync_point> wait_for);

    /// One point that is reached once every point of `wait_for` is: empty
    /// when all are reached already, the latest point itself when the ones
    /// left are on one queue, else the point of an empty submission on
    /// `queue` that waits for them.
    sync_point join(queue_id queue, std::span<const sync_point> wait_for);

    /// The contract's reached() and wait(): throw invalid_argument for a
    /// point never submitted, device_lost when the device failed.
    bool reached(sync_point point);
    void wait(sync_point point);
    /// Waits for everything submitted so far; logs instead of throwing.
    void wait_idle() noexcept;

    /// The timeline value `queue` has reached.
    std::uint64_t completed(queue_id queue);
    /// The last value submitted on `queue` (0 before the first submission).
    std::uint64_t last_submitted(queue_id queue) const noexcept;

private:
    friend class command_batch;

    struct lane {
        const char* name = "";
        vk::Queue queue;
        ranked_mutex<rank_queue>* queue_lock = nullptr;  // shared between lanes that share `queue`
        vk::PipelineStageFlags wait_stage;               // where this lane's work waits for semaphores
        vk::UniqueSemaphore timeline;
        vk::UniqueCommandPool pool;  // owns every command buffer below
        ranked_mutex<rank_lane> lock;
        std::deque<std::pair<std::uint64_t, vk::CommandBuffer>> in_flight;  // submission order
        std::vector<vk::CommandBuffer> free;
        std::atomic<std::uint64_t> last_submitted{0};
    };

    lane& lane_of(queue_id queue) noexcept { return m_lanes[static_cast<std::uint32_t>(queue)]; }
    const lane& lane_of(queue_id queue) const noexcept { return m_lanes[static_cast<std::uint32_t>(queue)]; }
    lane& lane_of(sync_point point);  // validates the point
    void give_back(queue_id queue, vk::CommandBuffer commands) noexcept;
    sync_point submit_locked(lane& target, queue_id queue, vk::CommandBuffer commands,
                             std::span<const sync_point> wait_for);

    std::shared_ptr<const logical_device> m_device;
    ranked_mutex<rank_queue> m_queue_locks[2];
    lane m_lanes[2];
};

}  // namespace usm::detail::vulkan
