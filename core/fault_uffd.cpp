// core/fault_uffd.cpp - the userfaultfd, its registration and handler thread.
#include "core/fault_uffd.hpp"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/address_space.hpp"
#include "core/coherence.hpp"
#include "core/diagnostics.hpp"

// Linux 6.4 and later; Debian 12's headers (6.1) predate them.
#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif

namespace usm::detail {

namespace {

int open_userfaultfd(std::string& why_not) {
    // Not UFFD_USER_MODE_ONLY: faults taken inside system calls are the
    // point of this path.
    const int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (fd >= 0) return fd;
    const int syscall_errno = errno;
    const int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
    if (dev >= 0) {
        const int from_dev = ::ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
        ::close(dev);
        if (from_dev >= 0) return from_dev;
    }
    why_not = concat("userfaultfd is not permitted (", std::strerror(syscall_errno),
                     "; /dev/userfaultfd: ", std::strerror(errno),
                     "): run as root, set vm.unprivileged_userfaultfd=1, or grant access to /dev/userfaultfd");
    return -1;
}

}  // namespace

std::unique_ptr<uffd_region> uffd_region::open(std::byte* begin, std::size_t bytes, std::string& why_not) {
    const int fd = open_userfaultfd(why_not);
    if (fd < 0) return nullptr;
    std::unique_ptr<uffd_region> region(new uffd_region(fd));

    constexpr unsigned long long needed = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM |
                                          UFFD_FEATURE_PAGEFAULT_FLAG_WP | UFFD_FEATURE_WP_HUGETLBFS_SHMEM |
                                          UFFD_FEATURE_THREAD_ID;
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = 0;
    if (::ioctl(fd, UFFDIO_API, &api) != 0) {
        why_not = concat("UFFDIO_API failed: ", std::strerror(errno));
        return nullptr;
    }
    // The first UFFDIO_API reports what the kernel offers; a second fd asks
    // for exactly what usm uses (the API handshake may be done only once).
    if ((api.features & needed) != needed || (api.features & UFFD_FEATURE_WP_UNPOPULATED) == 0) {
        why_not = concat(
            "the kernel's userfaultfd lacks write-protect and minor faults on shared memory "
            "(Linux 6.4 or later is needed; features 0x",
            std::hex, api.features, ")");
        return nullptr;
    }
    ::close(region->m_fd);
    region->m_fd = open_userfaultfd(why_not);
    if (region->m_fd < 0) return nullptr;
    api.api = UFFD_API;
    api.features = needed;
    if (::ioctl(region->m_fd, UFFDIO_API, &api) != 0) {
        why_not = concat("UFFDIO_API with features 0x", std::hex, needed, " failed: ", std::strerror(errno));
        return nullptr;
    }

    uffdio_register reg{};
    reg.range.start = reinterpret_cast<std::uintptr_t>(begin);
    reg.range.len = bytes;
    reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR | UFFDIO_REGISTER_MODE_WP;
    if (::ioctl(region->m_fd, UFFDIO_REGISTER, &reg) != 0) {
        why_not = concat("UFFDIO_REGISTER of ", format_bytes(bytes), " failed: ", std::strerror(errno));
        return nullptr;
    }
    const unsigned long long ioctls =
        (1ull << _UFFDIO_CONTINUE) | (1ull << _UFFDIO_WRITEPROTECT) | (1ull << _UFFDIO_WAKE);
    if ((reg.ioctls & ioctls) != ioctls) {
        why_not = "the registered range does not support UFFDIO_CONTINUE and UFFDIO_WRITEPROTECT";
        return nullptr;
    }
    region->m_stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (region->m_stop_fd < 0) {
        why_not = concat("eventfd failed: ", std::strerror(errno));
        return nullptr;
    }
    return region;
}

uffd_region::~uffd_region() {
    stop();
    if (m_stop_fd >= 0) ::close(m_stop_fd);
    if (m_fd >= 0) ::close(m_fd);
}

void uffd_region::start(std::function<void(const fault&)> serve) {
    m_thread = std::thread([this, serve = std::move(serve)] { run(serve); });
}

void uffd_region::stop() noexcept {
    if (!m_thread.joinable()) return;
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(m_stop_fd, &one, sizeof one);
    m_thread.join();
}

void uffd_region::run(const std::function<void(const fault&)>& serve) noexcept {
    pollfd fds[2] = {{m_fd, POLLIN, 0}, {m_stop_fd, POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            log(log_level::error, "userfaultfd poll failed: ", std::strerror(errno));
            return;
        }
        if ((fds[1].revents & POLLIN) != 0) return;
        uffd_msg messages[16];
        const ssize_t got = ::read(m_fd, messages, sizeof messages);
        if (got < 0) {
            if (errno == EAGAIN || errno == EINTR) continue;
            log(log_level::error, "userfaultfd read failed: ", std::strerror(errno));
            return;
        }
        for (std::size_t i = 0; i < static_cast<std::size_t>(got) / sizeof(uffd_msg); ++i) {
            const uffd_msg& m = messages[i];
            if (m.event != UFFD_EVENT_PAGEFAULT) continue;
            const bool write = (m.arg.pagefault.flags & (UFFD_PAGEFAULT_FLAG_WRITE | UFFD_PAGEFAULT_FLAG_WP)) != 0;
            serve({reinterpret_cast<void*>(m.arg.pagefault.address), write ? host_access::write : host_access::read,
                   static_cast<pid_t>(m.arg.pagefault.feat.ptid)});
        }
    }
}

void uffd_region::write_protect(std::byte* view, std::size_t bytes, bool protect, bool wake) {
    uffdio_writeprotect wp{};
    wp.range.start = reinterpret_cast<std::uintptr_t>(view);
    wp.range.len = bytes;
    wp.mode = (protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0) | (wake || protect ? 0 : UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
    while (::ioctl(m_fd, UFFDIO_WRITEPROTECT, &wp) != 0) {
        if (errno == EAGAIN) continue;  // the mm changed under the ioctl: retry
        throw_error(errc::out_of_memory, "UFFDIO_WRITEPROTECT(", static_cast<void*>(view), ", ", format_bytes(bytes),
                    ", ", protect ? "protect" : "unprotect", ") failed: ", std::strerror(errno));
    }
}

void uffd_region::map(std::byte* view, std::size_t bytes, bool read_only) {
    std::byte* at = view;
    std::byte* const end = view + bytes;
    while (at < end) {
        uffdio_continue c{};
        c.range.start = reinterpret_cast<std::uintptr_t>(at);
        c.range.len = static_cast<std::size_t>(end - at);
        c.mode = read_only ? UFFDIO_CONTINUE_MODE_WP : 0;
        if (::ioctl(m_fd, UFFDIO_CONTINUE, &c) == 0) return;
        const int e = errno;
        const std::size_t done = c.mapped > 0 ? static_cast<std::size_t>(c.mapped) : 0;
        if (e == EAGAIN) {
            at += done;
            continue;
        }
        if (e == EEXIST) {  // a page already mapped: keep it, map the rest
            at += done + page_size;
            continue;
        }
        throw_error(errc::out_of_memory, "UFFDIO_CONTINUE(", static_cast<void*>(at), ", ",
                    format_bytes(static_cast<std::size_t>(end - at)), ") failed: ", std::strerror(e));
    }
    wake(view, bytes);
}

void uffd_region::wake(std::byte* view, std::size_t bytes) noexcept {
    uffdio_range r{};
    r.start = reinterpret_cast<std::uintptr_t>(view);
    r.len = bytes;
    ::ioctl(m_fd, UFFDIO_WAKE, &r);
}

}  // namespace usm::detail
