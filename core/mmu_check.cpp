// core/mmu_check.cpp - /proc/self/maps and /proc/self/pagemap readers.
#include "core/mmu_check.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

#include "core/diagnostics.hpp"

namespace usm::detail {

mmu_snapshot::mmu_snapshot(const std::byte* begin, const std::byte* end) {
    const auto lo = reinterpret_cast<std::uintptr_t>(begin);
    const auto hi = reinterpret_cast<std::uintptr_t>(end);
    std::ifstream maps("/proc/self/maps");
    std::string line;
    while (std::getline(maps, line)) {
        std::uintptr_t from = 0, to = 0;
        char perms[5] = {};
        if (std::sscanf(line.c_str(), "%lx-%lx %4s", &from, &to, perms) != 3) continue;
        if (to <= lo || from >= hi) continue;
        const protection p = perms[1] == 'w'   ? protection::read_write
                             : perms[0] == 'r' ? protection::read
                                               : protection::none;
        m_mappings.push_back({std::max(from, lo), std::min(to, hi), p});
    }
}

std::vector<protection> mmu_snapshot::protection_of(const std::byte* begin, const std::byte* end) const {
    const auto lo = reinterpret_cast<std::uintptr_t>(begin);
    const auto hi = reinterpret_cast<std::uintptr_t>(end);
    std::vector<protection> pages((hi - lo) >> page_shift, protection::none);
    auto m = std::lower_bound(m_mappings.begin(), m_mappings.end(), lo,
                              [](const mapping& x, std::uintptr_t a) { return x.to <= a; });
    for (; m != m_mappings.end() && m->from < hi; ++m)
        for (std::uintptr_t a = std::max(m->from, lo); a < std::min(m->to, hi); a += page_size)
            pages[(a - lo) >> page_shift] = m->prot;
    return pages;
}

namespace {

std::vector<std::uint64_t> read_pagemap(const std::byte* begin, const std::byte* end) {
    const auto lo = reinterpret_cast<std::uintptr_t>(begin) >> page_shift;
    const auto hi = reinterpret_cast<std::uintptr_t>(end) >> page_shift;
    std::vector<std::uint64_t> entries(hi - lo);
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_error(errc::unsupported, "cannot open /proc/self/pagemap");
    const auto want = static_cast<ssize_t>(entries.size() * sizeof(std::uint64_t));
    const ssize_t got = ::pread(fd, entries.data(), static_cast<std::size_t>(want), static_cast<off_t>(lo * 8));
    ::close(fd);
    if (got != want) throw_error(errc::unsupported, "short read of /proc/self/pagemap");
    return entries;
}

}  // namespace

std::vector<bool> read_uffd_write_protected(const std::byte* begin, const std::byte* end) {
    std::vector<bool> out;
    for (std::uint64_t e : read_pagemap(begin, end)) out.push_back(((e >> 63) & 1) != 0 && ((e >> 57) & 1) != 0);
    return out;
}

std::vector<bool> read_present(const std::byte* begin, const std::byte* end) {
    std::vector<bool> out;
    for (std::uint64_t e : read_pagemap(begin, end)) out.push_back(((e >> 63) & 1) != 0);
    return out;
}

}  // namespace usm::detail
