// backends/opencl/opencl_timeline.hpp - sync points of an in-order command queue.
//
// OpenCL has no timeline semaphore. Each queue keeps a serial counter: the
// n-th submission that returns a sync point gets serial n and its completion
// cl_event. The queue is in order, so serial n complete implies every serial
// before it complete; events are released as soon as they are known reached.
//
// Locking: a timeline's mutex protects its counters and pending events. It is
// taken by submitting calls (record, pending_event, under the owning queue's
// submit lock) and by waiting calls from any thread (reached, wait), never
// while blocking in the driver: wait() takes its own event reference and
// unlocks before clWaitForEvents. It ranks below every other backend lock and
// nothing is called back while it is held.
#pragma once

#include <CL/cl.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>

#include "backends/opencl/opencl_handle.hpp"

namespace usm::detail::opencl {

/// Whether any command of a device failed. OpenCL gives no way to tell which
/// later commands still ran correctly after one failed, so the first failure
/// makes the device lost for every later point on either queue (as
/// VK_ERROR_DEVICE_LOST does in Vulkan). Thread-safe.
class device_health {
public:
    explicit device_health(std::string device) : m_device(std::move(device)) {}

    /// Records a failure; the first one is kept for messages.
    void mark_lost(cl_int status, const std::string& what) noexcept;
    bool lost() const noexcept { return m_lost.load(std::memory_order_acquire); }
    /// Throws errc::device_lost (with the first failure's status) if lost.
    void throw_if_lost() const;

    const std::string& device() const noexcept { return m_device; }

private:
    std::string m_device;
    std::atomic<bool> m_lost{false};
    mutable std::mutex m_lock;  // guards the two fields below
    cl_int m_status = CL_SUCCESS;
    std::string m_what;
};

/// The sync points of one in-order queue of one device.
class timeline {
public:
    /// `queue_name` ("compute", "transfer") names the queue in messages;
    /// `health` is the device's, shared by its timelines, and outlives this.
    timeline(const char* queue_name, device_health& health) noexcept : m_queue_name(queue_name), m_health(health) {}

    /// Records the completion event of the queue's next submission and returns
    /// its serial (1, 2, ...). Takes over the caller's event reference. Call
    /// with the queue's submit lock held, so serials follow queue order.
    std::uint64_t record(event_handle completion);

    /// A new reference to the completion event of `serial` for a wait list,
    /// or a null handle when it is already reached. Throws invalid_argument
    /// for a serial this queue never issued, device_lost if the device failed
    /// before reaching it.
    event_handle pending_event(std::uint64_t serial);

    /// True once `serial` is complete. Never blocks. Throws device_lost (the
    /// device failed before reaching it) or invalid_argument (never issued).
    bool reached(std::uint64_t serial);

    /// Blocks until `serial` is complete. Throws as reached() does.
    void wait(std::uint64_t serial);

    /// Retires every event whose command finished (after clFinish: all of
    /// them). Logs instead of throwing; used by wait_idle.
    void retire_finished() noexcept;

    /// The serial of the latest submission (0 before the first). Waiting for
    /// it waits for everything submitted so far, since the queue is in order.
    std::uint64_t last_issued();

    const char* queue_name() const noexcept { return m_queue_name; }

private:
    struct pending {
        std::uint64_t serial;
        event_handle event;
    };

    // Pops the leading events whose commands completed; stops at the first
    // still running, and marks the device lost at the first that failed.
    // Caller holds m_lock.
    void retire_finished_locked();
    // Validates `serial` and answers the cheap cases. Caller holds m_lock.
    bool reached_locked(std::uint64_t serial);

    const char* m_queue_name;
    device_health& m_health;
    std::mutex m_lock;
    std::uint64_t m_issued = 0;     // last serial handed out
    std::uint64_t m_completed = 0;  // every serial up to this one is complete
    std::deque<pending> m_pending;  // serials m_completed + 1 .. m_issued, in order
};

}  // namespace usm::detail::opencl
