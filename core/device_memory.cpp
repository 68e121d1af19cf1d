// core/device_memory.cpp - creating, finding and releasing segments.
#include "core/device_memory.hpp"

#include <algorithm>

#include "core/fault_injection.hpp"

namespace usm::detail {

void ensure_segments(allocation& a, device_slot& dev, std::size_t first, std::size_t end) {
    auto& segments = a.segments[dev.where];
    const std::size_t per = dev.segment_pages;
    if (segments.empty()) segments.resize((a.page_count + per - 1) / per);
    for (std::size_t s = first / per; s * per < end; ++s) {
        if (segments[s]) continue;
        testing::maybe_fail(testing::injected_call::create_mirror, *dev.backend);
        const std::size_t pages = std::min(per, a.page_count - s * per);
        segments[s] = dev.backend->create_mirror(pages << page_shift);
        dev.segment_pages_live += pages;
    }
}

std::pair<device_mirror*, std::size_t> segment_at(const allocation& a, const device_slot& dev, std::size_t offset) {
    const std::size_t per = dev.segment_pages << page_shift;
    return {a.segments[dev.where][offset / per].get(), offset % per};
}

std::size_t live_segment_pages(const allocation& a, const device_slot& dev) noexcept {
    const std::size_t per = dev.segment_pages;
    const auto& segments = a.segments[dev.where];
    std::size_t pages = 0;
    for (std::size_t s = 0; s < segments.size(); ++s)
        if (segments[s]) pages += std::min(per, a.page_count - s * per);
    return pages;
}

void release_empty_segments(allocation& a, device_slot& dev, const inflight_tracker& inflight) {
    const location l = dev.where;
    const std::size_t per = dev.segment_pages;
    auto& segments = a.segments[l];
    for (std::size_t s = 0; s < segments.size(); ++s) {
        if (!segments[s]) continue;
        const std::size_t first = s * per, end = std::min(first + per, a.page_count);
        bool empty = true;
        for (std::size_t p = first; p < end && empty; ++p) empty = !a.pages[p].copy_at(l);
        if (empty && !inflight.busy_at(a, first, end, l)) {
            segments[s].reset();
            dev.segment_pages_live -= end - first;
        }
    }
}

}  // namespace usm::detail
