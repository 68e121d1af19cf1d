// core/address_space.cpp - memfd backing, the two mappings, the range allocator.
#include "core/address_space.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iterator>

#include "core/diagnostics.hpp"
#include "core/fault_uffd.hpp"

namespace usm::detail {

namespace {

int to_prot(protection p) noexcept {
    switch (p) {
        case protection::none:
            return PROT_NONE;
        case protection::read:
            return PROT_READ;
        case protection::read_write:
            return PROT_READ | PROT_WRITE;
    }
    return PROT_NONE;
}

}  // namespace

address_space::address_space(std::size_t bytes) : m_size(round_up_to_pages(bytes)) {
    if (m_size == 0) throw_error(errc::invalid_argument, "context: address space size must be non-zero");
    m_memfd = ::memfd_create("usm-host-backing", MFD_CLOEXEC);
    if (m_memfd < 0) throw_error(errc::out_of_memory, "context: memfd_create failed: ", std::strerror(errno));
    if (::ftruncate(m_memfd, static_cast<off_t>(m_size)) != 0) {
        int e = errno;
        ::close(m_memfd);
        throw_error(errc::address_space_exhausted, "context: cannot size the host backing to ", format_bytes(m_size),
                    ": ", std::strerror(e));
    }
    void* view = ::mmap(nullptr, m_size, PROT_NONE, MAP_SHARED | MAP_NORESERVE, m_memfd, 0);
    void* alias = view == MAP_FAILED
                      ? MAP_FAILED
                      : ::mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m_memfd, 0);
    if (alias == MAP_FAILED) {
        int e = errno;
        if (view != MAP_FAILED) ::munmap(view, m_size);
        ::close(m_memfd);
        throw_error(errc::address_space_exhausted, "context: cannot reserve ", format_bytes(m_size),
                    " of address space (USM_VA_SIZE): ", std::strerror(e));
    }
    m_view = static_cast<std::byte*>(view);
    m_alias = static_cast<std::byte*>(alias);
    // The memory belongs to this process: a child of fork() sees none of it.
    ::madvise(m_view, m_size, MADV_DONTFORK);
    ::madvise(m_alias, m_size, MADV_DONTFORK);
    m_free.emplace(0, m_size);
}

address_space::~address_space() {
    ::munmap(m_view, m_size);
    ::munmap(m_alias, m_size);
    ::close(m_memfd);
}

std::optional<std::byte*> address_space::carve(std::size_t bytes) {
    for (auto it = m_free.begin(); it != m_free.end(); ++it) {
        if (it->second < bytes) continue;
        const std::size_t offset = it->first;
        const std::size_t left = it->second - bytes;
        m_free.erase(it);
        if (left != 0) m_free.emplace(offset + bytes, left);
        return m_view + offset;
    }
    return std::nullopt;
}

void address_space::release(std::byte* view_address, std::size_t bytes) {
    // Invariant 5: the bytes of a freed allocation never show through a new
    // one. Punching the hole zeroes the memfd pages for both mappings.
    const auto offset = static_cast<std::size_t>(view_address - m_view);
    if (::fallocate(m_memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                    static_cast<off_t>(bytes)) != 0) {
        // Cannot happen on a memfd; zero through the alias so the promise holds.
        std::memset(m_alias + offset, 0, bytes);
    }
    if (m_uffd != nullptr) {
        // Drop write-protect markers with the pages, and let any thread still
        // waiting on them retry: the range is inaccessible now, so it faults
        // as a stray access.
        try {
            m_uffd->write_protect(view_address, bytes, false, false);
        } catch (const error& e) {
            log(log_level::warn, "releasing ", static_cast<void*>(view_address), ": ", e.what());
        }
    }
    ::mprotect(view_address, bytes, PROT_NONE);
    if (m_uffd != nullptr) m_uffd->wake(view_address, bytes);

    auto [it, inserted] = m_free.emplace(offset, bytes);
    if (auto next = std::next(it); next != m_free.end() && it->first + it->second == next->first) {
        it->second += next->second;
        m_free.erase(next);
    }
    if (it != m_free.begin()) {
        auto prev = std::prev(it);
        if (prev->first + prev->second == it->first) {
            prev->second += it->second;
            m_free.erase(it);
        }
    }
}

void address_space::protect(std::byte* view_address, std::size_t bytes, protection p) {
    if (bytes == 0) return;
    if (m_uffd != nullptr) {
        switch (p) {
            case protection::none:
                // Unmap first, so no thread can write between the two steps;
                // the page stays in the memfd and faults back as a minor fault.
                if (::madvise(view_address, bytes, MADV_DONTNEED) != 0)
                    throw_error(errc::out_of_memory, "madvise(", static_cast<void*>(view_address), ", ",
                                format_bytes(bytes), ", MADV_DONTNEED) failed: ", std::strerror(errno));
                m_uffd->write_protect(view_address, bytes, false, false);
                return;
            case protection::read:
                m_uffd->write_protect(view_address, bytes, true);
                return;
            case protection::read_write:
                m_uffd->write_protect(view_address, bytes, false);
                return;
        }
    }
    if (::mprotect(view_address, bytes, to_prot(p)) != 0) {
        throw_error(errc::out_of_memory, "mprotect(", static_cast<void*>(view_address), ", ", format_bytes(bytes),
                    ") failed: ", std::strerror(errno), " (vm.max_map_count may be too low)");
    }
}

}  // namespace usm::detail

namespace usm::detail {

void address_space::activate(std::byte* view_address, std::size_t bytes) {
    if (m_uffd == nullptr) return;
    if (::mprotect(view_address, bytes, PROT_READ | PROT_WRITE) != 0)
        throw_error(errc::out_of_memory, "mprotect(", static_cast<void*>(view_address), ", ", format_bytes(bytes),
                    ") failed: ", std::strerror(errno), " (vm.max_map_count may be too low)");
}

void address_space::map_now(std::byte* view_address, std::size_t bytes, protection p) {
    const auto offset = static_cast<off_t>(view_address - m_view);
    // UFFDIO_CONTINUE maps existing memfd pages only: create the missing ones
    // (they read zero, as a hole does).
    if (::fallocate(m_memfd, 0, offset, static_cast<off_t>(bytes)) != 0)
        throw_error(errc::out_of_memory, "fallocate of ", format_bytes(bytes),
                    " of host backing failed: ", std::strerror(errno));
    m_uffd->map(view_address, bytes, p == protection::read);
}

}  // namespace usm::detail
