// core/device_memory.hpp - an allocation's device memory: segments.
//
// A device's copy of an allocation is made of segments of at most the
// device's largest buffer (device_slot::segment_pages; context_options::
// segment_size), each created when its first page is needed there and given
// back once it holds no valid page and no in-flight work uses it. All under
// the context lock.
#pragma once

#include <cstddef>
#include <utility>

#include "core/allocation_table.hpp"
#include "core/device_slot.hpp"
#include "core/inflight.hpp"

namespace usm::detail {

/// Creates the segments of `dev`'s copy of `a` that hold pages [first, end)
/// and do not exist yet. Throws out_of_memory or unsupported from the
/// backend; segments made before that stay (they hold no valid page, so
/// eviction may release them).
void ensure_segments(allocation& a, device_slot& dev, std::size_t first, std::size_t end);

/// The segment of `a` on `dev` that holds byte `offset`, and the offset
/// within it. The segment must exist.
std::pair<device_mirror*, std::size_t> segment_at(const allocation& a, const device_slot& dev, std::size_t offset);

/// Pages in `a`'s live segments on `dev`.
std::size_t live_segment_pages(const allocation& a, const device_slot& dev) noexcept;

/// Releases `dev`'s segments of `a` that hold no valid page and that no
/// in-flight work at `dev` uses.
void release_empty_segments(allocation& a, device_slot& dev, const inflight_tracker& inflight);

}  // namespace usm::detail
