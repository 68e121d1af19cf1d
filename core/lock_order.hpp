// core/lock_order.hpp - every lock in usm, in the order they may be taken.
//
//   0. device_page_table::m_launch    - one launch through a device's page
//                                        table at a time (core/page_table.hpp).
//                                        Held across the whole launch, its
//                                        kernel waits and replays; taken while
//                                        holding no other usm lock.
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
//   4. tracer::m_lock (core/trace.hpp) - leaf: records a trace event, under
//                                        any of the above.
//   5. diagnostics log sink            - leaf.
//
// The SIGSEGV handler takes m_lock on the faulting thread. That is safe
// because usm itself never touches the application view (it reads and writes
// through the alias), so a thread holding m_lock never faults into usm. Debug
// builds assert it: a usm fault on a thread that holds m_lock aborts with a
// message instead of deadlocking. Taking a lock of a lower level while holding
// a higher one aborts with a message in every build (lock_ranks).
#pragma once

#include <cassert>
#include <mutex>

namespace usm::detail {

/// The levels above, as numbers: a thread may take a lock only while every
/// lock it holds has a lower level.
enum class lock_level : unsigned { device_table = 0, install = 1, context = 2 };

/// Reports a broken lock order (a usm bug) and aborts: continuing could
/// deadlock. Defined in fault_signal.cpp.
[[noreturn]] void lock_order_violation(lock_level taking, unsigned held) noexcept;

/// Per-thread record of held levels. The check is one thread-local test per
/// lock, so it runs in every build, not only debug ones.
class lock_ranks {
public:
    static void acquire(lock_level l) noexcept {
        if ((t_held >> static_cast<unsigned>(l)) != 0) lock_order_violation(l, t_held);
        t_held |= 1u << static_cast<unsigned>(l);
    }
    static void release(lock_level l) noexcept { t_held &= ~(1u << static_cast<unsigned>(l)); }
    static bool holds(lock_level l) noexcept { return (t_held & (1u << static_cast<unsigned>(l))) != 0; }

private:
    static inline thread_local unsigned t_held = 0;
};

/// Holds `m`, a lock of level `level`, for a scope. The order is checked
/// before blocking: a misuse aborts with a message instead of deadlocking.
class ranked_lock {
public:
    ranked_lock(std::mutex& m, lock_level level) : m_mutex(m), m_level(level) {
        lock_ranks::acquire(m_level);
        m_mutex.lock();
    }
    ~ranked_lock() {
        m_mutex.unlock();
        lock_ranks::release(m_level);
    }
    ranked_lock(const ranked_lock&) = delete;
    ranked_lock& operator=(const ranked_lock&) = delete;

private:
    std::mutex& m_mutex;
    lock_level m_level;
};

/// A std::mutex of level `context` that also remembers which instance this
/// thread holds, so the fault handler can refuse to re-enter it.
class context_mutex {
public:
    void lock() {
        lock_ranks::acquire(lock_level::context);
        m_mutex.lock();
        t_held = this;
    }
    void unlock() {
        t_held = nullptr;
        m_mutex.unlock();
        lock_ranks::release(lock_level::context);
    }
    bool held_by_this_thread() const noexcept { return t_held == this; }
    /// Debug check before a submitting backend call.
    void assert_held() const noexcept {
        assert(held_by_this_thread() && "backend submission without the context lock");
    }
    /// Debug check before waiting for the device or building a kernel.
    static void assert_none_held() noexcept {
        assert(!lock_ranks::holds(lock_level::context) && "waiting or building while holding a context lock");
    }

private:
    std::mutex m_mutex;
    static inline thread_local const context_mutex* t_held = nullptr;
};

}  // namespace usm::detail
