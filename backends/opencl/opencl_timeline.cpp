// backends/opencl/opencl_timeline.cpp - sync points of an in-order command queue.
#include "backends/opencl/opencl_timeline.hpp"

#include "backends/opencl/opencl_check.hpp"

namespace usm::detail::opencl {

/* --- device health ---------------------------------------------------- */

void device_health::mark_lost(cl_int status, const std::string& what) noexcept {
    {
        std::lock_guard lock(m_lock);
        if (m_lost.load(std::memory_order_relaxed)) return;
        m_status = status;
        try {
            m_what = what;
        } catch (...) {
            // Keep the status even when the description cannot be stored.
        }
        m_lost.store(true, std::memory_order_release);
    }
    try {
        log(log_level::error, "OpenCL device ", m_device, " is lost: ", what, " (", cl_status_name(status), ", ",
            status, ")");
    } catch (...) {
        // Logging is best effort; the state above is what matters.
    }
}

void device_health::throw_if_lost() const {
    if (!lost()) return;
    std::lock_guard lock(m_lock);
    throw_driver_error(errc::device_lost, m_status, "OpenCL device ", m_device, " is lost: ", m_what, " (",
                       cl_status_name(m_status), ", ", m_status, ")");
}

/* --- timeline --------------------------------------------------------- */

namespace {

// CL_EVENT_COMMAND_EXECUTION_STATUS: CL_QUEUED .. CL_COMPLETE (0), or a
// negative error code when the command failed. A failed query counts as a
// failed command: the event is unusable either way.
cl_int execution_status(cl_event event) noexcept {
    cl_int status = CL_QUEUED;
    const cl_int result = clGetEventInfo(event, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof status, &status, nullptr);
    return result == CL_SUCCESS ? status : result;
}

}  // namespace

std::uint64_t timeline::record(event_handle completion) {
    std::lock_guard lock(m_lock);
    // Retire what finished meanwhile so the deque stays short even when the
    // core never asks (a poll of the oldest event is cheap).
    retire_finished_locked();
    m_pending.push_back({m_issued + 1, std::move(completion)});
    return ++m_issued;
}

void timeline::retire_finished_locked() {
    while (!m_pending.empty()) {
        const cl_int status = execution_status(m_pending.front().event.get());
        if (status < 0) {
            m_health.mark_lost(status,
                               concat("command ", m_pending.front().serial, " on the ", m_queue_name, " queue failed"));
            return;
        }
        if (status != CL_COMPLETE) return;
        m_completed = m_pending.front().serial;
        m_pending.pop_front();
    }
}

bool timeline::reached_locked(std::uint64_t serial) {
    if (serial <= m_completed) return true;
    if (serial > m_issued)
        throw_error(errc::invalid_argument, "sync point ", serial, " of the ", m_queue_name, " queue of ",
                    m_health.device(), " was never issued (last issued: ", m_issued, ")");
    retire_finished_locked();
    if (serial <= m_completed) return true;
    m_health.throw_if_lost();
    return false;
}

event_handle timeline::pending_event(std::uint64_t serial) {
    std::lock_guard lock(m_lock);
    if (reached_locked(serial)) return {};
    // m_pending holds serials m_completed + 1 .. m_issued consecutively.
    return event_handle::retain(m_pending[serial - m_pending.front().serial].event.get());
}

bool timeline::reached(std::uint64_t serial) {
    std::lock_guard lock(m_lock);
    return reached_locked(serial);
}

void timeline::wait(std::uint64_t serial) {
    std::unique_lock lock(m_lock);
    if (reached_locked(serial)) return;
    // Wait on our own reference with the lock released, so other threads can
    // submit, poll and wait meanwhile (and may retire this very entry).
    const event_handle event = event_handle::retain(m_pending[serial - m_pending.front().serial].event.get());
    lock.unlock();
    const cl_event raw = event.get();
    const cl_int waited = clWaitForEvents(1, &raw);
    const cl_int status = waited == CL_SUCCESS ? execution_status(event.get()) : waited;
    lock.lock();
    if (status != CL_COMPLETE) {
        // clWaitForEvents reports a failed command as
        // CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST; the event holds the cause.
        const cl_int cause =
            waited == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST ? execution_status(event.get()) : status;
        m_health.mark_lost(cause < 0 ? cause : waited,
                           concat("command ", serial, " on the ", m_queue_name, " queue failed (clWaitForEvents)"));
        m_health.throw_if_lost();
    }
    // The queue runs in order: every earlier command finished before this one.
    // Their events are still checked, since a command that failed would have
    // left its results (and the device) unusable.
    while (!m_pending.empty() && m_pending.front().serial <= serial) {
        const cl_int earlier = execution_status(m_pending.front().event.get());
        if (earlier < 0) {
            m_health.mark_lost(earlier,
                               concat("command ", m_pending.front().serial, " on the ", m_queue_name, " queue failed"));
            m_health.throw_if_lost();
        }
        m_completed = m_pending.front().serial;
        m_pending.pop_front();
    }
}

std::uint64_t timeline::last_issued() {
    std::lock_guard lock(m_lock);
    return m_issued;
}

void timeline::retire_finished() noexcept {
    try {
        std::lock_guard lock(m_lock);
        retire_finished_locked();
    } catch (const std::exception& e) {
        log(log_level::error, "retiring ", m_queue_name, " queue events of ", m_health.device(), ": ", e.what());
    }
}

}  // namespace usm::detail::opencl
