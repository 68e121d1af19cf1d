// core/fault_uffd.hpp - host faults through userfaultfd.
//
// The view of a context in this mode is registered with one userfaultfd in
// three modes at once:
//   * MISSING - the page is not in the memfd yet (fresh memory);
//   * MINOR   - the page is in the memfd but not mapped in the view (usm
//               zapped it with MADV_DONTNEED because the host copy became
//               invalid);
//   * WP      - the page is mapped but write-protected (host copy shared).
// The view's VMA stays read-write; what the host may do is decided per PTE:
// absent (none), write-protected (read), or plain (read-write). A handler
// thread reads the fault messages and asks the context to resolve them; the
// context maps pages back with UFFDIO_CONTINUE while it holds its lock, so a
// concurrent launch cannot revoke a page between the decision and the map.
//
// Unlike SIGSEGV, this serves accesses made by the kernel on the program's
// behalf: read(2) into a buffer whose pages live on a device works.
//
// Requires Linux 6.4 (UFFDIO_CONTINUE_MODE_WP, so a page is mapped read-only
// atomically) and the right to open a userfaultfd (root, the
// vm.unprivileged_userfaultfd sysctl, or read-write access to
// /dev/userfaultfd). Otherwise open() says why and the context falls back to
// the signal path.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace usm::detail {

enum class host_access;

class uffd_region {
public:
    /// One fault as the handler thread reads it.
    struct fault {
        void* address;
        host_access kind;
        pid_t thread;  ///< the faulting thread (for SIGBUS when it cannot be served)
    };

    /// Opens a userfaultfd and registers [begin, begin + bytes) in missing,
    /// minor and write-protect modes. Returns null, with the reason in
    /// `why_not`, when the kernel or the process's rights do not allow it.
    static std::unique_ptr<uffd_region> open(std::byte* begin, std::size_t bytes, std::string& why_not);
    ~uffd_region();
    uffd_region(const uffd_region&) = delete;
    uffd_region& operator=(const uffd_region&) = delete;

    /// Starts the handler thread; `serve` is called for every fault, on that
    /// thread, and must not throw.
    void start(std::function<void(const fault&)> serve);
    /// Stops and joins the handler thread (faults still pending are woken and
    /// retried by their threads; none can be pending once the view is gone).
    void stop() noexcept;

    /// Sets or clears write protection on [view, +bytes). Clearing wakes the
    /// threads waiting on those pages unless `wake` is false.
    void write_protect(std::byte* view, std::size_t bytes, bool protect, bool wake = true);
    /// Maps the pages of [view, +bytes) whose memfd pages exist, read-only or
    /// read-write, skipping pages already mapped, and wakes their waiters.
    void map(std::byte* view, std::size_t bytes, bool read_only);
    /// Wakes threads waiting on [view, +bytes) so they retry their access.
    void wake(std::byte* view, std::size_t bytes) noexcept;

    bool is_handler_thread() const noexcept { return std::this_thread::get_id() == m_thread.get_id(); }

private:
    explicit uffd_region(int fd) noexcept : m_fd(fd) {}
    void run(const std::function<void(const fault&)>& serve) noexcept;

    int m_fd;
    int m_stop_fd = -1;  // eventfd that ends the handler's poll
    std::thread m_thread;
};

}  // namespace usm::detail
