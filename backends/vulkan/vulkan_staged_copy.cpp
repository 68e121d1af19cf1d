// backends/vulkan/vulkan_staged_copy.cpp - recording copy regions and the
// staging loop of uploads and downloads.
#include "backends/vulkan/vulkan_staged_copy.hpp"

#include <algorithm>

#include "core/diagnostics.hpp"

namespace usm::detail::vulkan {

using direction = staging_pool::direction;

void transfer_barrier(vk::CommandBuffer commands) {
    const vk::MemoryBarrier barrier(vk::AccessFlagBits::eTransferWrite,
                                    vk::AccessFlagBits::eTransferRead | vk::AccessFlagBits::eTransferWrite);
    commands.pipelineBarrier(vk::PipelineStageFlagBits::eTransfer, vk::PipelineStageFlagBits::eTransfer, {}, barrier,
                             {}, {});
}

/* --- copy_recorder ------------------------------------------------------------------ */

bool copy_recorder::continues(vk::Buffer target, vk::DeviceSize mirror_offset) const noexcept {
    return !m_regions.empty() && m_regions.back().target == target &&
           m_regions.back().mirror_offset + m_regions.back().bytes == mirror_offset;
}

void copy_recorder::add(vk::Buffer staging, vk::Buffer target, vk::DeviceSize staging_offset,
                        vk::DeviceSize mirror_offset, vk::DeviceSize bytes) {
    m_staged += bytes;
    if (continues(target, mirror_offset) && m_regions.back().staging == staging &&
        m_regions.back().staging_offset + m_regions.back().bytes == staging_offset) {
        m_regions.back().bytes += bytes;
        return;
    }
    m_regions.push_back({staging, target, staging_offset, mirror_offset, bytes});
}

void copy_recorder::record(vk::CommandBuffer commands, direction dir) {
    std::stable_sort(m_regions.begin(), m_regions.end(), [](const region& a, const region& b) {
        const std::less<VkBuffer> less;
        if (a.staging != b.staging) return less(static_cast<VkBuffer>(a.staging), static_cast<VkBuffer>(b.staging));
        return less(static_cast<VkBuffer>(a.target), static_cast<VkBuffer>(b.target));
    });
    std::vector<vk::BufferCopy> copies;
    for (std::size_t first = 0; first < m_regions.size();) {
        std::size_t last = first;
        copies.clear();
        for (; last < m_regions.size() && m_regions[last].staging == m_regions[first].staging &&
               m_regions[last].target == m_regions[first].target;
             ++last) {
            const region& r = m_regions[last];
            if (dir == direction::to_device)
                copies.emplace_back(r.staging_offset, r.mirror_offset, r.bytes);
            else
                copies.emplace_back(r.mirror_offset, r.staging_offset, r.bytes);
        }
        const region& r = m_regions[first];
        if (dir == direction::to_device)
            commands.copyBuffer(r.staging, r.target, copies);
        else
            commands.copyBuffer(r.target, r.staging, copies);
        first = last;
    }
    m_regions.clear();
    m_staged = 0;
}

/* --- staged_copy --------------------------------------------------------------------- */

staged_copy::staged_copy(const logical_device& device, queue_set& queues, staging_pool& pool, direction dir,
                         vk::DeviceSize max_submission, std::span<const sync_point> wait_for, const char* what)
    : m_device(device),
      m_queues(queues),
      m_pool(pool),
      m_direction(dir),
      m_max_submission(max_submission),
      m_wait_for(wait_for),
      m_what(what),
      m_reusable_until([this] { return reusable_until(); }) {
    open();
}

void staged_copy::open() {
    m_batch = m_queues.begin(queue_id::transfer);
    transfer_barrier(m_batch.commands());
    m_dirty = false;
}

void staged_copy::submit() {
    m_recorder.record(m_batch.commands(), m_direction);
    if (m_direction == direction::to_host) {
        // The host reads staging after waiting for the timeline.
        const vk::MemoryBarrier to_host(vk::AccessFlagBits::eTransferWrite, vk::AccessFlagBits::eHostRead);
        m_batch.commands().pipelineBarrier(vk::PipelineStageFlagBits::eTransfer, vk::PipelineStageFlagBits::eHost, {},
                                           to_host, {}, {});
    }
    m_last = m_queues.submit(m_batch, m_wait_for);
    m_pool.submitted(m_last.value);
    submitted(m_last.value);
}

void staged_copy::stage(std::span<const piece> pieces) {
    for (const piece& p : pieces)
        for (vk::DeviceSize done = 0; done < p.bytes;) done += stage_slice(p, done);
}

vk::DeviceSize staged_copy::stage_slice(const piece& p, vk::DeviceSize done) {
    if (m_recorder.staged() >= m_max_submission) {
        submit();
        open();
    }
    const vk::DeviceSize at = p.offset + done;
    // Bytes that continue the last region need no alignment: they merge into it.
    const vk::DeviceSize align = m_recorder.continues(p.target->buffer(), at) ? 1 : 16;
    const auto slice = m_pool.reserve(p.bytes - done, align, m_reusable_until);
    if (!slice) {
        wait_for_staging();
        return 0;
    }
    slice_reserved(p, done, *slice);
    m_recorder.add(slice->buffer(), p.target->buffer(), slice->offset, at, slice->bytes);
    m_dirty = true;
    return slice->bytes;
}

void staged_copy::wait_for_staging() {
    // Staging is full of work in flight: send what is staged, then wait for
    // the oldest chunk to come free.
    if (m_dirty) {
        submit();
        open();
    }
    const std::uint64_t oldest = m_pool.oldest_busy();
    if (oldest == 0) throw_error(errc::out_of_memory, m_what, " on ", m_device.name, ": no staging memory");
    log(log_level::debug, m_what, " on ", m_device.name, ": all ", format_bytes(m_pool.capacity()),
        " of staging in flight; waiting for transfer ", oldest);
    m_queues.wait({static_cast<std::uint32_t>(queue_id::transfer), oldest});
}

sync_point staged_copy::finish() {
    if (m_dirty) submit();
    return m_last;
}

void staged_copy::abandon() noexcept {
    m_pool.abandoned();
    // So that nothing of a failed batch is still in flight.
    try {
        m_queues.wait(m_last);
    } catch (...) {
    }
}

void staged_copy::trim_staging() noexcept {
    try {
        m_pool.trim(m_queues.completed(queue_id::transfer));
    } catch (...) {
        // Only housekeeping failed; the batch is done.
    }
}

}  // namespace usm::detail::vulkan
