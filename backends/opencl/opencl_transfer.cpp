// backends/opencl/opencl_transfer.cpp - uploads and downloads on the transfer queue.
//
// A batch becomes one run of non-blocking commands on the in-order transfer
// queue: the first command waits for the batch's wait_for events, the last
// one's event is the batch's completion, and the queue is flushed once.
// Copies are clEnqueueSVMMemcpy between host memory and a mirror, zero fills
// clEnqueueSVMMemFill. Adjacent operations are merged first, so a run of
// pages that is contiguous on both sides costs one command.
//
// CPU copies: on a CPU device whose mirrors are fine-grained SVM
// (svm_mirror::host_accessible), a batch the core sends on the CPU path is
// memcpy and memset on the calling thread instead, once everything the queue
// would have waited for is complete: its wait_for and every earlier transfer.
// A kernel in flight that is not in wait_for is not waited for, exactly as
// the transfer queue would not wait for it (the contract orders a transfer
// after wait_for and earlier transfers only; the core passes what a batch
// must follow).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <span>
#include <type_traits>

#include "backends/opencl/opencl_check.hpp"
#include "backends/opencl/opencl_device.hpp"

namespace usm::detail::opencl {

/// One command: `bytes` at `device` (an SVM address inside `mirror`), with
/// `host` the other end of a copy (null for a fill). `offset` is kept for
/// messages.
struct transfer_region {
    const svm_mirror* mirror;
    std::byte* device;
    std::byte* host;
    std::size_t bytes;
    std::size_t offset;
};

namespace {

/* --- planning ------------------------------------------------------------- */

// Sorts regions by device address and merges those of one mirror that
// continue one another on both sides (two SVM allocations may happen to be
// adjacent, but one command must not span both). Operations of one batch
// target disjoint ranges; if they do not, merging could reorder overlapping
// writes, so the batch is kept as given (in order, unmerged).
std::vector<transfer_region> coalesce(std::vector<transfer_region> regions) {
    std::vector<transfer_region> sorted = regions;
    std::stable_sort(sorted.begin(), sorted.end(), [](const transfer_region& a, const transfer_region& b) {
        return std::less<>{}(a.device, b.device);
    });
    for (std::size_t i = 1; i < sorted.size(); ++i)
        if (std::less<>{}(sorted[i].device, sorted[i - 1].device + sorted[i - 1].bytes)) return regions;
    std::vector<transfer_region> merged;
    merged.reserve(sorted.size());
    for (const transfer_region& r : sorted) {
        if (!merged.empty()) {
            transfer_region& last = merged.back();
            const bool device_follows = last.mirror == r.mirror && last.device + last.bytes == r.device;
            const bool host_follows = last.host == nullptr ? r.host == nullptr : last.host + last.bytes == r.host;
            if (device_follows && host_follows) {
                last.bytes += r.bytes;
                continue;
            }
        }
        merged.push_back(r);
    }
    return merged;
}

// The widest pattern clEnqueueSVMMemFill accepts for a region: a power of two
// up to 128 bytes that divides both its address and its size.
std::size_t fill_pattern_size(const transfer_region& r) noexcept {
    const auto address = reinterpret_cast<std::uintptr_t>(r.device);
    std::size_t pattern = 128;
    while (pattern > 1 && (address % pattern != 0 || r.bytes % pattern != 0)) pattern /= 2;
    return pattern;
}

constexpr unsigned char zeros[128] = {};

// invalid_argument unless every region of a CPU-copied batch is in a mirror
// the host may access (fine-grained SVM of a CPU device).
void require_host_accessible(const std::string& device, const char* what, std::span<const transfer_region> copies,
                             std::span<const transfer_region> fills) {
    for (std::span<const transfer_region> regions : {copies, fills})
        for (const transfer_region& r : regions)
            if (!r.mirror->host_accessible())
                throw_error(errc::invalid_argument, what, " on ", device, ": a CPU copy into a coarse-grained mirror",
                            " (offset ", r.offset, ", ", r.bytes, " bytes) that the host may not access");
}

}  // namespace

template <class Op>
std::vector<transfer_region> opencl_device::plan_regions(std::span<const Op> ops, const char* what,
                                                         const char* kind) const {
    std::vector<transfer_region> regions;
    regions.reserve(ops.size());
    for (std::size_t i = 0; i < ops.size(); ++i) {
        const Op& op = ops[i];
        const svm_mirror& mirror = copyable_mirror(op.mirror, what);
        if (op.offset > mirror.bytes() || op.bytes > mirror.bytes() - op.offset)
            throw_error(errc::out_of_range, what, " on ", name(), ": ", kind, " ", i, " [offset ", op.offset, ", +",
                        op.bytes, ") runs past its mirror of ", describe_bytes(mirror.bytes()));
        if (op.bytes == 0) continue;
        std::byte* host = nullptr;  // a fill's
        if constexpr (std::is_same_v<Op, upload_op>) {
            if (op.source == nullptr)
                throw_error(errc::invalid_argument, what, " on ", name(), ": ", kind, " ", i, " has no source");
            // The source is only read; SVM memcpy takes both ends as void*.
            host = const_cast<std::byte*>(op.source);
        } else if constexpr (std::is_same_v<Op, download_op>) {
            if (op.destination == nullptr)
                throw_error(errc::invalid_argument, what, " on ", name(), ": ", kind, " ", i, " has no destination");
            host = op.destination;
        }
        regions.push_back({&mirror, mirror.base() + op.offset, host, op.bytes, op.offset});
    }
    return coalesce(std::move(regions));
}

/* --- CPU copies ------------------------------------------------------------ */

void opencl_device::wait_before_cpu_copy(std::span<const sync_point> wait_for) {
    // Every point is validated (queue_of) and waited for on its own queue's
    // timeline; a failed command makes the device lost and throws here,
    // before anything is copied.
    for (const sync_point& point : wait_for) wait(point);
    // Earlier transfers: write-after-write and read-after-write with what the
    // queue still holds. The queue is in order, so its last serial covers
    // them all.
    if (const std::uint64_t last = m_transfer.points.last_issued(); last != 0) m_transfer.points.wait(last);
}

/* --- commands on the transfer queue ------------------------------------------ */

event_handle opencl_device::enqueue_in_order(std::size_t commands, std::span<const cl_event> wait_list,
                                             const char* what, const enqueue_step& enqueue) {
    event_handle done;
    std::size_t issued = 0;
    try {
        for (; issued < commands; ++issued) {
            // Only the first command waits (the queue is in order) and only
            // the last one needs an event (its completion implies the others').
            const bool first = issued == 0;
            enqueue(issued, first ? static_cast<cl_uint>(wait_list.size()) : 0u,
                    first && !wait_list.empty() ? wait_list.data() : nullptr,
                    issued + 1 == commands ? done.out() : nullptr);
        }
    } catch (...) {
        // Commands already enqueued still read the sources (an upload) or
        // write the host (a download), which the core may reuse once this
        // throws: let them finish first.
        const cl_int finished = issued > 0 ? clFinish(m_transfer.handle.get()) : CL_SUCCESS;
        if (finished != CL_SUCCESS) m_health.mark_lost(finished, concat("clFinish after a failed ", what, " failed"));
        throw;
    }
    return done;
}

sync_point opencl_device::record_transfer(event_handle done, std::size_t commands) {
    const std::uint64_t serial = m_transfer.points.record(std::move(done));
    const cl_int flushed = clFlush(m_transfer.handle.get());
    if (flushed != CL_SUCCESS) {
        m_health.mark_lost(flushed, "clFlush of the transfer queue failed");
        throw_cl(errc::device_lost, flushed, "clFlush", name(), "after an upload of ", commands, " commands");
    }
    return {transfer_queue, serial};
}

/* --- upload --------------------------------------------------------------- */

sync_point opencl_device::upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                                 std::span<const sync_point> wait_for, transfer_path path) {
    // Validate everything before enqueueing anything.
    const std::vector<transfer_region> copy_regions = plan_regions(copies, "upload", "copy");
    const std::vector<transfer_region> fill_regions = plan_regions(fills, "upload", "fill");
    m_health.throw_if_lost();

    std::lock_guard submit(m_transfer.submit_lock);
    // Into fine-grained mirrors of a CPU device: memset and memcpy now, no
    // command. The empty point is correct: it is reached, and by then so is
    // wait_for. The host's writes are seen by any command enqueued after
    // this returns (fine-grained SVM: an enqueue is a synchronisation
    // point). Fills first, as on the queue.
    if ((!copy_regions.empty() || !fill_regions.empty()) && path == transfer_path::cpu) {
        require_host_accessible(name(), "upload", copy_regions, fill_regions);
        wait_before_cpu_copy(wait_for);
        for (const transfer_region& r : fill_regions) std::memset(r.device, 0, r.bytes);
        for (const transfer_region& r : copy_regions) std::memcpy(r.device, r.host, r.bytes);
        return {};
    }
    const std::vector<event_handle> waits = wait_events(wait_for, transfer_queue);
    const std::vector<cl_event> wait_list = raw_events(waits);
    const cl_command_queue transfer = m_transfer.handle.get();
    const std::size_t commands = fill_regions.size() + copy_regions.size();
    if (commands == 0) {
        if (wait_list.empty()) return {};  // nothing to do and nothing to wait for: always reached
        // Still a point that follows wait_for, since the caller may wait on it.
        event_handle done;
        check_cl_as(
            errc::transfer_failed,
            clEnqueueMarkerWithWaitList(transfer, static_cast<cl_uint>(wait_list.size()), wait_list.data(), done.out()),
            "clEnqueueMarkerWithWaitList", name(), "an empty upload waiting for ", wait_list.size(), " events");
        return record_transfer(std::move(done), 0);
    }
    // Fills first: if a fill and a copy of one batch ever overlap, the copied
    // bytes are the ones that stay.
    const auto enqueue = [&](std::size_t i, cl_uint wait_count, const cl_event* wait_events, cl_event* event) {
        if (i < fill_regions.size()) {
            const transfer_region& r = fill_regions[i];
            const std::size_t pattern = fill_pattern_size(r);
            check_cl_as(
                errc::transfer_failed,
                clEnqueueSVMMemFill(transfer, r.device, zeros, pattern, r.bytes, wait_count, wait_events, event),
                "clEnqueueSVMMemFill", name(), "zero fill of ", describe_bytes(r.bytes), " at mirror offset ", r.offset,
                " (pattern of ", pattern, " bytes)");
            return;
        }
        const transfer_region& r = copy_regions[i - fill_regions.size()];
        check_cl_as(errc::transfer_failed,
                    clEnqueueSVMMemcpy(transfer, CL_FALSE, r.device, r.host, r.bytes, wait_count, wait_events, event),
                    "clEnqueueSVMMemcpy", name(), "upload of ", describe_bytes(r.bytes), " from host ",
                    static_cast<void*>(r.host), " to mirror offset ", r.offset);
    };
    return record_transfer(enqueue_in_order(commands, wait_list, "upload", enqueue), commands);
}

/* --- download ------------------------------------------------------------- */

void opencl_device::download(std::span<const download_op> copies, std::span<const sync_point> wait_for,
                             transfer_path path) {
    const std::vector<transfer_region> regions = plan_regions(copies, "download", "copy");
    if (regions.empty()) return;  // nothing to deliver, so nothing to wait for
    m_health.throw_if_lost();

    event_handle done;
    {
        std::lock_guard submit(m_transfer.submit_lock);
        // Out of fine-grained mirrors of a CPU device: memcpy once its
        // producers (wait_for: the kernel that last wrote each mirror) and
        // earlier transfers are complete. Their completion, seen by this
        // thread's wait, makes their writes visible to it.
        if (path == transfer_path::cpu) {
            require_host_accessible(name(), "download", regions, {});
            wait_before_cpu_copy(wait_for);
            for (const transfer_region& r : regions) std::memcpy(r.host, r.device, r.bytes);
            return;
        }
        const std::vector<event_handle> waits = wait_events(wait_for, transfer_queue);
        const std::vector<cl_event> wait_list = raw_events(waits);
        const cl_command_queue transfer = m_transfer.handle.get();
        const auto enqueue = [&](std::size_t i, cl_uint wait_count, const cl_event* wait_events, cl_event* event) {
            const transfer_region& r = regions[i];
            check_cl_as(
                errc::transfer_failed,
                clEnqueueSVMMemcpy(transfer, CL_FALSE, r.host, r.device, r.bytes, wait_count, wait_events, event),
                "clEnqueueSVMMemcpy", name(), "download of ", describe_bytes(r.bytes), " from mirror offset ", r.offset,
                " to host ", static_cast<void*>(r.host));
        };
        done = enqueue_in_order(regions.size(), wait_list, "download", enqueue);
    }
    // Synchronous per the contract. clWaitForEvents flushes the queue.
    const cl_event raw = done.get();
    const cl_int waited = clWaitForEvents(1, &raw);
    if (waited != CL_SUCCESS) {
        cl_int cause = waited;
        if (waited == CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
            clGetEventInfo(raw, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof cause, &cause, nullptr);
        m_health.mark_lost(cause, "a download on the transfer queue failed");
        throw_cl(errc::device_lost, cause, "clWaitForEvents", name(), "download of ", regions.size(), " regions");
    }
}

}  // namespace usm::detail::opencl
