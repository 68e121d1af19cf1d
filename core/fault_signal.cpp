// core/fault_signal.cpp - the SIGSEGV handler, the range registry, chaining.
#include "core/fault_signal.hpp"

#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <thread>

#include "core/coherence.hpp"
#include "core/diagnostics.hpp"
#include "core/lock_order.hpp"

namespace usm::detail {

namespace {

/* --- the registry: read lock-free by the handler ------------------------ */

struct range_slot {
    std::atomic<std::uintptr_t> begin{0};
    std::atomic<std::uintptr_t> end{0};
    std::atomic<fault_target*> target{nullptr};
    std::atomic<int> active{0};  // handlers running in target right now
};

constexpr int max_contexts = 64;
range_slot g_slots[max_contexts];

/* --- the displaced handler ---------------------------------------------- */

// Double-buffered so the handler never reads one being written.
struct sigaction g_previous[2];
std::atomic<int> g_previous_index{0};
std::mutex g_install_mutex;  // core/lock_order.hpp, level "install"

/// g_install_mutex with its rank recorded (it is taken alone).
class install_lock : ranked_lock {
public:
    install_lock() : ranked_lock(g_install_mutex, lock_level::install) {}
};

host_access access_of(void* ucontext) noexcept {
#if defined(__x86_64__)
    // Bit 1 of the page-fault error code is set for a write.
    const auto* uc = static_cast<const ucontext_t*>(ucontext);
    return (uc->uc_mcontext.gregs[REG_ERR] & 0x2) != 0 ? host_access::write : host_access::read;
#else
    (void)ucontext;
    return host_access::unknown;
#endif
}

void install_locked(bool from_handler) noexcept;

void reset_to_default(int sig) noexcept {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
}

std::int64_t now_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);  // async-signal-safe
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void pass_on(int sig, siginfo_t* info, void* ucontext) noexcept {
    // A handler that "restores its predecessor and returns" would make a
    // foreign fault bounce between it and usm forever: once the same address
    // faults again right after being passed on, several times, end it with
    // the default action, as if usm had never been there.
    thread_local std::uintptr_t last_address = 0;
    thread_local std::int64_t last_time = 0;
    thread_local int repeats = 0;
    const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
    const std::int64_t t = now_ns();
    repeats = (address == last_address && t - last_time < 50'000'000) ? repeats + 1 : 0;
    last_address = address;
    last_time = t;
    if (repeats >= 8) {
        reset_to_default(sig);
        return;
    }

    const struct sigaction prev = g_previous[g_previous_index.load(std::memory_order_acquire)];
    const bool has_function = (prev.sa_flags & SA_SIGINFO) != 0
                                  ? prev.sa_sigaction != nullptr
                                  : prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN;
    if (!has_function) {
        // Default (or ignored, which the kernel does not honour for a real
        // fault): returning re-executes the access, which now kills the process.
        reset_to_default(sig);
        return;
    }
    if ((prev.sa_flags & SA_SIGINFO) != 0)
        prev.sa_sigaction(sig, info, ucontext);
    else
        prev.sa_handler(sig);
    // The handler may have put back whatever *it* displaced (LLVM's does),
    // which would take usm's faults away from usm: stay on top, chaining to
    // whatever is installed now.
    if (g_install_mutex.try_lock()) {
        install_locked(true);
        g_install_mutex.unlock();
    }
}

void on_sigsegv(int sig, siginfo_t* info, void* ucontext) {
    const int saved_errno = errno;
    const auto address = reinterpret_cast<std::uintptr_t>(info->si_addr);
    for (range_slot& slot : g_slots) {
        fault_target* target = slot.target.load(std::memory_order_acquire);
        if (target == nullptr) continue;
        if (address < slot.begin.load(std::memory_order_relaxed) || address >= slot.end.load(std::memory_order_relaxed))
            continue;
        slot.active.fetch_add(1, std::memory_order_acq_rel);
        bool handled = false;
        if (slot.target.load(std::memory_order_acquire) == target)
            handled = target->on_host_fault(info->si_addr, access_of(ucontext));
        slot.active.fetch_sub(1, std::memory_order_acq_rel);
        if (handled) {
            errno = saved_errno;
            return;
        }
        break;  // in a context's range but not in an allocation: a stray access
    }
    pass_on(sig, info, ucontext);
    errno = saved_errno;
}

bool is_ours(const struct sigaction& sa) noexcept {
    return (sa.sa_flags & SA_SIGINFO) != 0 && sa.sa_sigaction == &on_sigsegv;
}

void install_locked(bool from_handler) noexcept {
    struct sigaction current {};
    ::sigaction(SIGSEGV, nullptr, &current);
    if (is_ours(current)) return;
    const int next = 1 - g_previous_index.load(std::memory_order_relaxed);
    g_previous[next] = current;
    g_previous_index.store(next, std::memory_order_release);

    struct sigaction ours {};
    ours.sa_sigaction = &on_sigsegv;
    ours.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&ours.sa_mask);
    ::sigaction(SIGSEGV, &ours, nullptr);
    const bool displaced = (current.sa_flags & SA_SIGINFO) != 0 || current.sa_handler != SIG_DFL;
    if (displaced && !from_handler)
        log(log_level::debug, "SIGSEGV handler installed above an existing one; foreign faults go to it");
}

}  // namespace

void register_fault_range(std::byte* begin, std::byte* end, fault_target* target) {
    install_lock lock;
    for (range_slot& slot : g_slots) {
        if (slot.target.load(std::memory_order_relaxed) != nullptr) continue;
        slot.begin.store(reinterpret_cast<std::uintptr_t>(begin), std::memory_order_relaxed);
        slot.end.store(reinterpret_cast<std::uintptr_t>(end), std::memory_order_relaxed);
        slot.target.store(target, std::memory_order_release);
        install_locked(false);
        return;
    }
    throw_error(errc::unsupported, "context: more than ", max_contexts, " live contexts in one process");
}

void unregister_fault_range(fault_target* target) noexcept {
    install_lock lock;
    for (range_slot& slot : g_slots) {
        if (slot.target.load(std::memory_order_relaxed) != target) continue;
        slot.target.store(nullptr, std::memory_order_release);
        while (slot.active.load(std::memory_order_acquire) != 0) std::this_thread::yield();
        slot.begin.store(0, std::memory_order_relaxed);
        slot.end.store(0, std::memory_order_relaxed);
    }
}

fault_target* fault_range_owner(const void* p) noexcept {
    const auto address = reinterpret_cast<std::uintptr_t>(p);
    for (range_slot& slot : g_slots) {
        fault_target* target = slot.target.load(std::memory_order_acquire);
        if (target != nullptr && address >= slot.begin.load(std::memory_order_relaxed) &&
            address < slot.end.load(std::memory_order_relaxed))
            return target;
    }
    return nullptr;
}

void ensure_fault_handler_on_top() noexcept {
    install_lock lock;
    install_locked(false);
}

bool fault_handler_is_on_top() noexcept {
    struct sigaction current {};
    ::sigaction(SIGSEGV, nullptr, &current);
    return is_ours(current);
}

void lock_order_violation(lock_level taking, unsigned held) noexcept {
    std::fprintf(stderr,
                 "usm: internal error: lock order violated: taking level %u while holding levels 0x%x "
                 "(see core/lock_order.hpp)\n",
                 static_cast<unsigned>(taking), held);
    std::abort();
}

}  // namespace usm::detail
