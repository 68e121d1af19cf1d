// core/lock_order.hpp - every lock in usm, in the order they may be taken.
//
//   1. fault_signal: g_install_mutex   - the handler registry's writers. Taken
//                                        alone (context creation/teardown,
//                                        after driver calls). Never held while
//                                        calling a driver or the context.
//   2. context_impl::m_lock            - page states, allocations, in-flight
//                                        work, stats, mirrors of one context.
//                                        Held across submitting backend calls
//                                        (create_mirror, upload, download,
//                                        launch) and reached(); NEVER held
//                                        while waiting for a kernel
//                                        (backend wait) or building one.
//   3. backend-internal locks          - queues, timelines, staging, kernel
//                                        argument state. Rank below the
//                                        context: a backend never calls back
//                                        into the core.
//   4. diagnostics log sink            - leaf.
//
// The SIGSEGV handler takes m_lock on the faulting thread. That is safe
// because usm itself never touches the application view (it reads and writes
// through the alias), so a thread holding m_lock never faults into usm. Debug
// builds assert it: a usm fault on a thread that holds m_lock aborts with a
// message instead of deadlocking.
#pragma once

#include <cassert>
#include <mutex>

namespace usm::detail {

/// A std::mutex that remembers (per thread) whether it is held, so the fault
/// handler can assert it is not re-entered.
class context_mutex {
public:
    void lock() {
        m_mutex.lock();
        t_held = this;
    }
    void unlock() {
        t_held = nullptr;
        m_mutex.unlock();
    }
    bool held_by_this_thread() const noexcept { return t_held == this; }

private:
    std::mutex m_mutex;
    static inline thread_local const context_mutex* t_held = nullptr;
};

}  // namespace usm::detail
