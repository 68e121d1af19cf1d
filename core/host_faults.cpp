// core/host_faults.cpp - serving host accesses to usm memory: the SIGSEGV
// and userfaultfd paths, and explicit host access (context::host_access).
//
// The path of a host read fault: fault_signal.cpp's handler (or the
// userfaultfd thread, fault_uffd.cpp) calls on_host_fault (or
// serve_uffd_fault), which calls serve_host_access: under the context lock it
// finds the allocation and asks coherence::resolve_host_fault, waiting
// without the lock for conflicting kernels and asking again.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "core/context_impl.hpp"
#include "core/counters.hpp"
#include "core/diagnostics.hpp"

namespace usm::detail {

namespace {

/// A host access usm cannot serve is reported the way the kernel reports a
/// failed page-in of a mapped file: SIGBUS, with the default action, in the
/// faulting thread. Async-signal-safe.
void raise_sigbus_in(pid_t thread) noexcept {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGBUS, &dfl, nullptr);
    ::syscall(SYS_tgkill, ::getpid(), thread, SIGBUS);
}

const char* access_word(host_access kind) noexcept { return kind == host_access::write ? "write" : "read"; }

std::byte* page_of_address(void* address) noexcept {
    return reinterpret_cast<std::byte*>(reinterpret_cast<std::uintptr_t>(address) & ~(page_size - 1));
}

}  // namespace

bool context_impl::serve_host_access(void* address, host_access kind, bool count, bool map, std::uint64_t thread) {
    const double began = m_trace.now();
    lock_type lock(m_lock);
    bool waited = false;
    for (;;) {
        allocation* a = m_allocations.find(address);
        if (a == nullptr) return false;  // guard page or freed: a stray access
        const std::size_t page = a->page_of(address);
        const bool write =
            kind == host_access::write || (kind == host_access::unknown && a->pages[page].valid_at(host_location));
        m_inflight.retire_completed();
        auto outcome = m_coherence.resolve_host_fault(*a, page, kind, m_inflight);
        if (!outcome.waits.empty()) {
            wait_unlocked(lock, outcome.waits);
            waited = true;
            continue;
        }
        // A fault is counted once, when usm had to act on it.
        if (count && (outcome.changed || waited)) {
            detail::count(m_stats, write ? &usm::stats::host_write_faults : &usm::stats::host_read_faults, 1, a,
                          nullptr);
            if (m_trace.on())
                m_trace.complete(write ? "host write fault" : "host read fault", "fault",
                                 thread != 0 ? thread : tracer::this_thread(), began, m_trace.now(),
                                 concat("\"address\": \"", address, "\", \"allocation\": ", a->id, ", \"page\": ", page,
                                        ", \"waited\": ", waited ? "true" : "false"));
        }
        if (map) map_around(*a, page);
        return true;
    }
}

bool context_impl::on_host_fault(void* address, host_access kind) noexcept {
    // A forked child inherits the handler but not the memory (MADV_DONTFORK):
    // its access is an ordinary stray one, passed on to end in SIGSEGV.
    if (::getpid() != m_pid) return false;
    if (m_lock.held_by_this_thread()) {
        // usm touched the application view while holding its lock: a bug
        // that would deadlock. Say so rather than hang.
        static const char text[] = "usm: internal error: host fault in usm memory while holding the context lock\n";
        [[maybe_unused]] auto written = ::write(STDERR_FILENO, text, sizeof text - 1);
        std::abort();
    }
    try {
        return serve_host_access(address, kind, true);
    } catch (const std::exception& e) {
        log(log_level::error, "host ", access_word(kind), " of ", address, " cannot be served: ", e.what(),
            "; raising SIGBUS");
        raise_sigbus_in(static_cast<pid_t>(::syscall(SYS_gettid)));
        return true;
    }
}

void context_impl::map_around(const allocation& a, std::size_t page) {
    // Under the lock, so no launch revokes these pages between the decision
    // and the map. Neighbours the host may touch the same way come along
    // (within one block), so a sweep takes one fault per block, not per page.
    const protection p = a.pages[page].host_protection();
    if (p == protection::none) return;
    const std::size_t block = m_options.block_size >> page_shift;
    const std::size_t first = page & ~(block - 1), end = std::min(first + block, a.page_count);
    std::size_t lo = page, hi = page + 1;
    while (lo > first && a.pages[lo - 1].host_protection() == p) --lo;
    while (hi < end && a.pages[hi].host_protection() == p) ++hi;
    m_space->map_now(a.page_address(lo), (hi - lo) << page_shift, p);
}

void context_impl::serve_uffd_fault(const uffd_region::fault& f) noexcept {
    try {
        // Freed meanwhile: the range is inaccessible now, so the retry
        // faults as a stray access.
        if (!serve_host_access(f.address, f.kind, true, true, static_cast<std::uint64_t>(f.thread)))
            m_uffd->wake(page_of_address(f.address), page_size);
    } catch (const std::exception& e) {
        log(log_level::error, "host ", access_word(f.kind), " of ", f.address, " (thread ", f.thread,
            ") cannot be served: ", e.what(), "; raising SIGBUS in that thread");
        raise_sigbus_in(f.thread);
        m_uffd->wake(page_of_address(f.address), page_size);
    }
}

void context_impl::host_access_range(const void* p, std::size_t bytes, access a) {
    check_process("host_access");
    make_host_valid("host_access", p, bytes, a != access::read);
}

void context_impl::make_host_valid(const char* operation, const void* p, std::size_t bytes, bool write) {
    if (bytes == 0) return;
    lock_type lock(m_lock);
    for (;;) {
        // Looked up again after every wait: the allocation may be gone.
        allocation& owner = locate(operation, p, bytes);
        const auto [first, end] = owner.pages_of(p, bytes);
        m_inflight.retire_completed();
        // Exactly the range, in one batch per device, no read-ahead. On the
        // userfaultfd path pages not mapped yet map at their first (minor)
        // fault; system calls take that fault too.
        auto outcome = m_coherence.resolve_host_range(owner, first, end, write, m_inflight);
        if (outcome.waits.empty()) return;
        wait_unlocked(lock, outcome.waits);
    }
}

}  // namespace usm::detail
