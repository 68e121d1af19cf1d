// backends/vulkan/vulkan_transfer.cpp - upload and download batches: planning,
// staging, recording copies and fills, splitting, and delivery to the host.
#include "backends/vulkan/vulkan_transfer.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <vector>

#include "core/diagnostics.hpp"

namespace usm::detail::vulkan {

namespace {

using direction = staging_pool::direction;

/// One validated, non-empty op: bytes of a mirror and where they come from
/// (upload) or go to (download).
struct piece {
    mirror* target = nullptr;
    vk::DeviceSize offset = 0;
    const std::byte* source = nullptr;  // upload
    std::byte* destination = nullptr;   // download
    vk::DeviceSize bytes = 0;
};

/// A range vkCmdFillBuffer zeroes: offset and size are multiples of 4.
struct fill_range {
    mirror* target = nullptr;
    vk::DeviceSize offset = 0;
    vk::DeviceSize bytes = 0;
};

void check_range(const logical_device& dev, const char* what, std::size_t index, const mirror& m, std::size_t offset,
                 std::size_t bytes) {
    if (offset > m.bytes() || bytes > m.bytes() - offset)
        throw_error(errc::out_of_range, what, " on ", dev.name, ": op #", index, " [", offset, ", +", bytes,
                    ") runs past the end of its ", m.bytes(), "-byte mirror");
}

/// `m` as a mirror of `dev` that copies may target: imported host memory is
/// refused (invalid_argument), since kernels use it in place and the core
/// never copies it (core/device_interface.hpp, import_host).
mirror& copyable_mirror_of(device_mirror* m, const logical_device& dev, const char* what, std::size_t index) {
    mirror& ours = mirror_of(m, dev, what);
    if (ours.imported())
        throw_error(errc::invalid_argument, what, " on ", dev.name, ": op #", index, " names imported host memory at ",
                    static_cast<const void*>(ours.host()), " (", ours.bytes(),
                    " bytes), which kernels use in place and nothing copies");
    return ours;
}

/// Sorts by mirror, then offset: adjacent ops become one copy region.
void sort_pieces(std::vector<piece>& pieces) {
    std::stable_sort(pieces.begin(), pieces.end(), [](const piece& a, const piece& b) {
        if (a.target != b.target) return std::less<const mirror*>()(a.target, b.target);
        return a.offset < b.offset;
    });
}

/// Orders this transfer batch after the transfer batches submitted before it
/// on the same queue (write-after-write and read-after-write between
/// uploads and downloads that the core did not chain with wait_for).
/// True when a batch is for the CPU: every mirror it touches is mapped and
/// it is at most `limit` bytes (0: never).
bool cpu_copies_take(std::span<const piece> pieces, std::span<const fill_range> fills, std::size_t limit) {
    if (limit == 0) return false;
    std::size_t total = 0;
    for (const piece& p : pieces) {
        if (p.target->mapped() == nullptr) return false;
        total += p.bytes;
    }
    for (const fill_range& f : fills) {
        if (f.target->mapped() == nullptr) return false;
        total += f.bytes;
    }
    return total <= limit;
}

void transfer_barrier(vk::CommandBuffer commands) {
    const vk::MemoryBarrier barrier(vk::AccessFlagBits::eTransferWrite,
                                    vk::AccessFlagBits::eTransferRead | vk::AccessFlagBits::eTransferWrite);
    commands.pipelineBarrier(vk::PipelineStageFlagBits::eTransfer, vk::PipelineStageFlagBits::eTransfer, {}, barrier,
                             {}, {});
}

/// Waits for `point`, ignoring failure: used while an exception is already
/// on its way, so that nothing of a failed batch is still in flight.
void settle(queue_set& queues, sync_point point) noexcept {
    try {
        queues.wait(point);
    } catch (...) {
    }
}

/// Collects copy regions between staging chunks and mirrors for one
/// submission and records them as one vkCmdCopyBuffer per (chunk, mirror).
class copy_recorder {
public:
    /// Whether bytes at `mirror_offset` of `target` would extend the last region.
    bool continues(vk::Buffer target, vk::DeviceSize mirror_offset) const noexcept {
        return !m_regions.empty() && m_regions.back().target == target &&
               m_regions.back().mirror_offset + m_regions.back().bytes == mirror_offset;
    }

    void add(vk::Buffer staging, vk::Buffer target, vk::DeviceSize staging_offset, vk::DeviceSize mirror_offset,
             vk::DeviceSize bytes) {
        m_staged += bytes;
        if (continues(target, mirror_offset) && m_regions.back().staging == staging &&
            m_regions.back().staging_offset + m_regions.back().bytes == staging_offset) {
            m_regions.back().bytes += bytes;
            return;
        }
        m_regions.push_back({staging, target, staging_offset, mirror_offset, bytes});
    }

    bool empty() const noexcept { return m_regions.empty(); }
    vk::DeviceSize staged() const noexcept { return m_staged; }

    void record(vk::CommandBuffer commands, direction dir) {
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

private:
    struct region {
        vk::Buffer staging;
        vk::Buffer target;
        vk::DeviceSize staging_offset;
        vk::DeviceSize mirror_offset;
        vk::DeviceSize bytes;
    };
    std::vector<region> m_regions;
    vk::DeviceSize m_staged = 0;
};

}  // namespace

transfer_engine::transfer_engine(std::shared_ptr<const logical_device> device, queue_set& queues)
    : m_device(std::move(device)),
      m_queues(queues),
      m_to_device(m_device, direction::to_device),
      m_to_host(m_device, direction::to_host) {
    if (m_device->cpu_device) m_cpu_copy_max = default_cpu_copy_max;
    if (const char* v = std::getenv("USM_CPU_COPY_MAX"); v != nullptr && *v != '\0')  // NOLINT(concurrency-mt-unsafe)
        m_cpu_copy_max = parse_size("USM_CPU_COPY_MAX", v);
}

void transfer_engine::wait_before_cpu_copy(std::span<const sync_point> wait_for) {
    for (const sync_point& p : wait_for) m_queues.wait(p);
    if (const std::uint64_t last = m_queues.last_submitted(queue_id::transfer); last != 0)
        m_queues.wait({static_cast<std::uint32_t>(queue_id::transfer), last});
}

/* --- upload --------------------------------------------------------------------------- */

sync_point transfer_engine::upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                                   std::span<const sync_point> wait_for) {
    const logical_device& dev = *m_device;
    std::lock_guard lock(m_lock);

    // Plan (and validate everything) before recording anything.
    static constexpr std::byte zeros[8] = {};
    std::vector<piece> pieces;
    std::vector<fill_range> fill_ranges;
    pieces.reserve(copies.size());
    for (std::size_t i = 0; i < copies.size(); ++i) {
        const upload_op& op = copies[i];
        mirror& target = copyable_mirror_of(op.mirror, dev, "upload", i);
        check_range(dev, "upload", i, target, op.offset, op.bytes);
        if (op.bytes == 0) continue;
        if (op.source == nullptr)
            throw_error(errc::invalid_argument, "upload on ", dev.name, ": op #", i, " has no source");
        pieces.push_back({&target, op.offset, op.source, nullptr, op.bytes});
    }
    for (std::size_t i = 0; i < fills.size(); ++i) {
        const fill_op& op = fills[i];
        mirror& target = copyable_mirror_of(op.mirror, dev, "upload (fill)", i);
        check_range(dev, "upload (fill)", i, target, op.offset, op.bytes);
        if (op.bytes == 0) continue;
        // vkCmdFillBuffer takes 4-byte aligned offsets and sizes: the aligned
        // middle is filled, ragged edges (under 4 bytes each) are copied from zeros.
        const vk::DeviceSize begin = op.offset;
        const vk::DeviceSize end = op.offset + op.bytes;
        const vk::DeviceSize middle_begin = (begin + 3) / 4 * 4;
        const vk::DeviceSize middle_end = end / 4 * 4;
        if (middle_begin >= middle_end) {
            pieces.push_back({&target, begin, zeros, nullptr, end - begin});  // under 8 bytes
            continue;
        }
        if (begin < middle_begin) pieces.push_back({&target, begin, zeros, nullptr, middle_begin - begin});
        fill_ranges.push_back({&target, middle_begin, middle_end - middle_begin});
        if (middle_end < end) pieces.push_back({&target, middle_end, zeros, nullptr, end - middle_end});
    }
    sort_pieces(pieces);
    for (std::size_t i = 1; i < pieces.size(); ++i) {
        const piece& a = pieces[i - 1];
        const piece& b = pieces[i];
        // Regions of one vkCmdCopyBuffer must not overlap; neither may two
        // writes of one batch, whose order would be undefined.
        if (a.target == b.target && a.offset + a.bytes > b.offset)
            throw_error(errc::invalid_argument, "upload on ", dev.name, ": copies to [", a.offset, ", +", a.bytes,
                        ") and [", b.offset, ", +", b.bytes, ") of one mirror overlap");
    }
    if (pieces.empty() && fill_ranges.empty()) return m_queues.join(queue_id::transfer, wait_for);

    // A small batch into mapped mirrors (a CPU device): memcpy and memset
    // now, no submission. Its pages are invalid on this device, so no kernel
    // in flight reads or writes them.
    if (cpu_copies_take(pieces, fill_ranges, m_cpu_copy_max)) {
        wait_before_cpu_copy(wait_for);
        for (const piece& p : pieces) std::memcpy(p.target->mapped() + p.offset, p.source, p.bytes);
        for (const fill_range& f : fill_ranges) std::memset(f.target->mapped() + f.offset, 0, f.bytes);
        return {};
    }

    // Record, splitting into several submissions where staging runs short.
    command_batch batch;
    copy_recorder recorder;
    bool dirty = false;  // the open batch holds commands
    sync_point last{};
    const auto open_batch = [&] {
        batch = m_queues.begin(queue_id::transfer);
        transfer_barrier(batch.commands());
        dirty = false;
    };
    const std::function<std::uint64_t()> completed = [this] { return m_queues.completed(queue_id::transfer); };
    const auto submit_batch = [&] {
        recorder.record(batch.commands(), direction::to_device);
        last = m_queues.submit(batch, wait_for);  // every part waits: each writes mirrors
        m_to_device.submitted(last.value);
    };
    try {
        open_batch();
        for (const fill_range& f : fill_ranges) batch.commands().fillBuffer(f.target->buffer(), f.offset, f.bytes, 0);
        dirty = !fill_ranges.empty();
        if (dirty && !pieces.empty()) transfer_barrier(batch.commands());  // copies land after the fills
        for (const piece& p : pieces) {
            for (vk::DeviceSize done_bytes = 0; done_bytes < p.bytes;) {
                if (recorder.staged() >= max_submission) {
                    submit_batch();
                    open_batch();
                }
                const vk::DeviceSize at = p.offset + done_bytes;
                const vk::DeviceSize align = recorder.continues(p.target->buffer(), at) ? 1 : 16;
                const auto slice = m_to_device.reserve(p.bytes - done_bytes, align, completed);
                if (!slice) {
                    // Staging is full of work in flight: send what is staged,
                    // then wait for the oldest chunk to come free.
                    if (dirty) {
                        submit_batch();
                        open_batch();
                    }
                    const std::uint64_t oldest = m_to_device.oldest_busy();
                    if (oldest == 0) throw_error(errc::out_of_memory, "upload on ", dev.name, ": no staging memory");
                    log(log_level::debug, "upload on ", dev.name, ": all ", format_bytes(m_to_device.capacity()),
                        " of staging in flight; waiting for transfer ", oldest);
                    m_queues.wait({static_cast<std::uint32_t>(queue_id::transfer), oldest});
                    continue;
                }
                std::memcpy(slice->host(), p.source + done_bytes, slice->bytes);
                recorder.add(slice->buffer(), p.target->buffer(), slice->offset, at, slice->bytes);
                dirty = true;
                done_bytes += slice->bytes;
            }
        }
        if (dirty) submit_batch();
    } catch (...) {
        m_to_device.abandoned();
        settle(m_queues, last);
        throw;
    }
    try {
        m_to_device.trim(m_queues.completed(queue_id::transfer));
    } catch (...) {
        // Only housekeeping failed; the batch is submitted.
    }
    return last;
}

/* --- download ---------------------------------------------------------------------------- */

void transfer_engine::download(std::span<const download_op> copies, std::span<const sync_point> wait_for) {
    const logical_device& dev = *m_device;
    std::lock_guard lock(m_lock);

    std::vector<piece> pieces;
    pieces.reserve(copies.size());
    for (std::size_t i = 0; i < copies.size(); ++i) {
        const download_op& op = copies[i];
        mirror& source = copyable_mirror_of(op.mirror, dev, "download", i);
        check_range(dev, "download", i, source, op.offset, op.bytes);
        if (op.bytes == 0) continue;
        if (op.destination == nullptr)
            throw_error(errc::invalid_argument, "download on ", dev.name, ": op #", i, " has no destination");
        pieces.push_back({&source, op.offset, nullptr, op.destination, op.bytes});
    }
    if (pieces.empty()) {
        for (const sync_point& p : wait_for) m_queues.wait(p);
        return;
    }
    // A small batch out of mapped mirrors (a CPU device): memcpy once the
    // producers are done, no submission and no fence.
    // A download is synchronous: this thread waits for the bytes whatever
    // path they take, and through the queue it would still copy them out of
    // staging itself. So into mapped mirrors every size is a CPU copy (one
    // memcpy instead of a queue copy and a memcpy).
    if (cpu_copies_take(pieces, {}, m_cpu_copy_max == 0 ? 0 : SIZE_MAX)) {
        wait_before_cpu_copy(wait_for);
        for (const piece& p : pieces) std::memcpy(p.destination, p.target->mapped() + p.offset, p.bytes);
        return;
    }
    sort_pieces(pieces);  // overlapping reads are fine

    // Staged bytes waiting to be copied out once their submission completes.
    struct landing {
        std::uint64_t value = 0;  // 0 while its batch is still being recorded
        const std::byte* staged = nullptr;
        std::byte* destination = nullptr;
        std::size_t bytes = 0;
    };
    std::deque<landing> landings;
    std::size_t unsubmitted = 0;  // landings at the back without a value yet
    const auto deliver = [&](std::uint64_t done) {
        // Before any chunk is rewound: rewinding needs its bytes delivered.
        while (!landings.empty() && landings.front().value != 0 && landings.front().value <= done) {
            std::memcpy(landings.front().destination, landings.front().staged, landings.front().bytes);
            landings.pop_front();
        }
    };

    command_batch batch;
    copy_recorder recorder;
    bool dirty = false;
    sync_point last{};
    const auto open_batch = [&] {
        batch = m_queues.begin(queue_id::transfer);
        transfer_barrier(batch.commands());
        dirty = false;
    };
    // A chunk is rewound only after its bytes reached their destinations:
    // deliver with the same completed value the pool then rewinds by.
    const std::function<std::uint64_t()> completed_and_delivered = [&] {
        const std::uint64_t done = m_queues.completed(queue_id::transfer);
        deliver(done);
        return done;
    };
    const auto submit_batch = [&] {
        recorder.record(batch.commands(), direction::to_host);
        // The host reads staging after waiting for the timeline.
        const vk::MemoryBarrier to_host(vk::AccessFlagBits::eTransferWrite, vk::AccessFlagBits::eHostRead);
        batch.commands().pipelineBarrier(vk::PipelineStageFlagBits::eTransfer, vk::PipelineStageFlagBits::eHost, {},
                                         to_host, {}, {});
        last = m_queues.submit(batch, wait_for);
        m_to_host.submitted(last.value);
        for (std::size_t i = landings.size() - unsubmitted; i < landings.size(); ++i) landings[i].value = last.value;
        unsubmitted = 0;
    };
    try {
        open_batch();
        for (const piece& p : pieces) {
            for (vk::DeviceSize done_bytes = 0; done_bytes < p.bytes;) {
                if (recorder.staged() >= max_submission) {
                    submit_batch();
                    open_batch();
                }
                const vk::DeviceSize at = p.offset + done_bytes;
                const vk::DeviceSize align = recorder.continues(p.target->buffer(), at) ? 1 : 16;
                const auto slice = m_to_host.reserve(p.bytes - done_bytes, align, completed_and_delivered);
                if (!slice) {
                    if (dirty) {
                        submit_batch();
                        open_batch();
                    }
                    const std::uint64_t oldest = m_to_host.oldest_busy();
                    if (oldest == 0) throw_error(errc::out_of_memory, "download on ", dev.name, ": no staging memory");
                    log(log_level::debug, "download on ", dev.name, ": all ", format_bytes(m_to_host.capacity()),
                        " of staging in flight; waiting for transfer ", oldest);
                    m_queues.wait({static_cast<std::uint32_t>(queue_id::transfer), oldest});
                    continue;
                }
                recorder.add(slice->buffer(), p.target->buffer(), slice->offset, at, slice->bytes);
                landings.push_back({0, slice->host(), p.destination + done_bytes, slice->bytes});
                ++unsubmitted;
                dirty = true;
                done_bytes += slice->bytes;
            }
        }
        if (dirty) submit_batch();
        m_queues.wait(last);
        deliver(last.value);
    } catch (...) {
        m_to_host.abandoned();
        settle(m_queues, last);
        throw;
    }
    try {
        m_to_host.trim(m_queues.completed(queue_id::transfer));
    } catch (...) {
    }
}

}  // namespace usm::detail::vulkan
