// backends/vulkan/vulkan_transfer.cpp - upload and download batches: planning
// (validation), CPU copies, and the queue path through staging
// (vulkan_staged_copy), with delivery to the host.
#include "backends/vulkan/vulkan_transfer.hpp"

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <type_traits>
#include <vector>

#include "backends/vulkan/vulkan_staged_copy.hpp"

namespace usm::detail::vulkan {

namespace {

using direction = staging_pool::direction;

/// A range vkCmdFillBuffer zeroes: offset and size are multiples of 4.
struct fill_range {
    mirror* target = nullptr;
    vk::DeviceSize offset = 0;
    vk::DeviceSize bytes = 0;
};

/// An upload batch after validation: the copies (with the ragged edges of
/// fills, copied from zeros) sorted by mirror and offset, and the fills.
struct upload_plan {
    std::vector<piece> pieces;
    std::vector<fill_range> fills;
    bool empty() const noexcept { return pieces.empty() && fills.empty(); }
};

/* --- planning ------------------------------------------------------------------------ */

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

/// Copy op #`index` (an upload_op or a download_op) checked and appended to
/// `pieces`, unless it is empty.
template <class Op>
void add_piece(std::vector<piece>& pieces, const logical_device& dev, const char* what, std::size_t index,
               const Op& op) {
    mirror& target = copyable_mirror_of(op.mirror, dev, what, index);
    check_range(dev, what, index, target, op.offset, op.bytes);
    if (op.bytes == 0) return;
    if constexpr (std::is_same_v<Op, upload_op>) {
        if (op.source == nullptr)
            throw_error(errc::invalid_argument, what, " on ", dev.name, ": op #", index, " has no source");
        pieces.push_back({&target, op.offset, op.source, nullptr, op.bytes});
    } else {
        if (op.destination == nullptr)
            throw_error(errc::invalid_argument, what, " on ", dev.name, ": op #", index, " has no destination");
        pieces.push_back({&target, op.offset, nullptr, op.destination, op.bytes});
    }
}

/// Fill op #`index` checked and appended to `plan`. vkCmdFillBuffer takes
/// 4-byte aligned offsets and sizes: the aligned middle is filled, ragged
/// edges (under 4 bytes each) are copied from zeros.
void add_fill(upload_plan& plan, const logical_device& dev, std::size_t index, const fill_op& op) {
    static constexpr std::byte zeros[8] = {};
    mirror& target = copyable_mirror_of(op.mirror, dev, "upload (fill)", index);
    check_range(dev, "upload (fill)", index, target, op.offset, op.bytes);
    if (op.bytes == 0) return;
    const vk::DeviceSize begin = op.offset;
    const vk::DeviceSize end = op.offset + op.bytes;
    const vk::DeviceSize middle_begin = (begin + 3) / 4 * 4;
    const vk::DeviceSize middle_end = end / 4 * 4;
    if (middle_begin >= middle_end) {
        plan.pieces.push_back({&target, begin, zeros, nullptr, end - begin});  // under 8 bytes
        return;
    }
    if (begin < middle_begin) plan.pieces.push_back({&target, begin, zeros, nullptr, middle_begin - begin});
    plan.fills.push_back({&target, middle_begin, middle_end - middle_begin});
    if (middle_end < end) plan.pieces.push_back({&target, middle_end, zeros, nullptr, end - middle_end});
}

/// Sorts by mirror, then offset: adjacent ops become one copy region.
void sort_pieces(std::vector<piece>& pieces) {
    std::stable_sort(pieces.begin(), pieces.end(), [](const piece& a, const piece& b) {
        if (a.target != b.target) return std::less<const mirror*>()(a.target, b.target);
        return a.offset < b.offset;
    });
}

/// Everything an upload does, validated before anything is recorded.
upload_plan plan_upload(const logical_device& dev, std::span<const upload_op> copies, std::span<const fill_op> fills) {
    upload_plan plan;
    plan.pieces.reserve(copies.size());
    for (std::size_t i = 0; i < copies.size(); ++i) add_piece(plan.pieces, dev, "upload", i, copies[i]);
    for (std::size_t i = 0; i < fills.size(); ++i) add_fill(plan, dev, i, fills[i]);
    sort_pieces(plan.pieces);
    for (std::size_t i = 1; i < plan.pieces.size(); ++i) {
        const piece& a = plan.pieces[i - 1];
        const piece& b = plan.pieces[i];
        // Regions of one vkCmdCopyBuffer must not overlap; neither may two
        // writes of one batch, whose order would be undefined.
        if (a.target == b.target && a.offset + a.bytes > b.offset)
            throw_error(errc::invalid_argument, "upload on ", dev.name, ": copies to [", a.offset, ", +", a.bytes,
                        ") and [", b.offset, ", +", b.bytes, ") of one mirror overlap");
    }
    return plan;
}

/// Everything a download copies, validated. Overlapping reads are fine.
std::vector<piece> plan_download(const logical_device& dev, std::span<const download_op> copies) {
    std::vector<piece> pieces;
    pieces.reserve(copies.size());
    for (std::size_t i = 0; i < copies.size(); ++i) add_piece(pieces, dev, "download", i, copies[i]);
    return pieces;
}

/// Checks that a CPU-copied batch touches only mapped mirrors (a CPU
/// device's): invalid_argument naming the first one that is not.
void require_mapped(const logical_device& dev, const char* what, std::span<const piece> pieces,
                    std::span<const fill_range> fills) {
    auto refuse = [&](const mirror& m) {
        throw_error(errc::invalid_argument, what, " on ", dev.name, ": a CPU copy into a mirror of ", m.bytes(),
                    " bytes the host cannot address (only a CPU device's mirrors are mapped)");
    };
    for (const piece& p : pieces)
        if (p.target->mapped() == nullptr) refuse(*p.target);
    for (const fill_range& f : fills)
        if (f.target->mapped() == nullptr) refuse(*f.target);
}

/* --- the queue path's two directions ---------------------------------------------------- */

/// Upload: sources are copied into staging as it is reserved, so the caller
/// may reuse them once the batch is submitted.
class upload_staging final : public staged_copy {
public:
    using staged_copy::staged_copy;

private:
    void slice_reserved(const piece& p, vk::DeviceSize done, const staging_pool::slice& s) override {
        std::memcpy(s.host(), p.source + done, s.bytes);
    }
};

/// Download: staged bytes are copied out once their submission completes.
class download_staging final : public staged_copy {
public:
    using staged_copy::staged_copy;

    /// Copies out every landing whose submission is at or below `done`.
    void deliver(std::uint64_t done) {
        while (!m_landings.empty() && m_landings.front().value != 0 && m_landings.front().value <= done) {
            std::memcpy(m_landings.front().destination, m_landings.front().staged, m_landings.front().bytes);
            m_landings.pop_front();
        }
    }

private:
    struct landing {
        std::uint64_t value = 0;  // 0 while its batch is still being recorded
        const std::byte* staged = nullptr;
        std::byte* destination = nullptr;
        std::size_t bytes = 0;
    };

    void slice_reserved(const piece& p, vk::DeviceSize done, const staging_pool::slice& s) override {
        m_landings.push_back({0, s.host(), p.destination + done, s.bytes});
        ++m_unsubmitted;
    }
    // A chunk is rewound only after its bytes reached their destinations:
    // deliver with the same completed value the pool then rewinds by.
    std::uint64_t reusable_until() override {
        const std::uint64_t done = staged_copy::reusable_until();
        deliver(done);
        return done;
    }
    void submitted(std::uint64_t value) override {
        for (std::size_t i = m_landings.size() - m_unsubmitted; i < m_landings.size(); ++i) m_landings[i].value = value;
        m_unsubmitted = 0;
    }

    std::deque<landing> m_landings;
    std::size_t m_unsubmitted = 0;  // landings at the back without a value yet
};

}  // namespace

transfer_engine::transfer_engine(std::shared_ptr<const logical_device> device, queue_set& queues)
    : m_device(std::move(device)),
      m_queues(queues),
      m_to_device(m_device, direction::to_device),
      m_to_host(m_device, direction::to_host) {}

void transfer_engine::wait_before_cpu_copy(std::span<const sync_point> wait_for) {
    for (const sync_point& p : wait_for) m_queues.wait(p);
    if (const std::uint64_t last = m_queues.last_submitted(queue_id::transfer); last != 0)
        m_queues.wait({static_cast<std::uint32_t>(queue_id::transfer), last});
}

/* --- upload --------------------------------------------------------------------------- */

sync_point transfer_engine::upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                                   std::span<const sync_point> wait_for, transfer_path path) {
    const logical_device& dev = *m_device;
    std::lock_guard lock(m_lock);
    const upload_plan plan = plan_upload(dev, copies, fills);
    if (plan.empty()) return m_queues.join(queue_id::transfer, wait_for);

    // Into mapped mirrors (a CPU device): memcpy and memset now, no
    // submission. Its pages are invalid on this device, so no kernel in
    // flight reads or writes them.
    if (path == transfer_path::cpu) {
        require_mapped(dev, "upload", plan.pieces, plan.fills);
        wait_before_cpu_copy(wait_for);
        for (const piece& p : plan.pieces) std::memcpy(p.target->mapped() + p.offset, p.source, p.bytes);
        for (const fill_range& f : plan.fills) std::memset(f.target->mapped() + f.offset, 0, f.bytes);
        return {};
    }

    upload_staging run(dev, m_queues, m_to_device, direction::to_device, max_submission, wait_for, "upload");
    sync_point last{};
    try {
        for (const fill_range& f : plan.fills) run.commands().fillBuffer(f.target->buffer(), f.offset, f.bytes, 0);
        if (!plan.fills.empty()) {
            run.recorded_commands();
            if (!plan.pieces.empty()) transfer_barrier(run.commands());  // copies land after the fills
        }
        run.stage(plan.pieces);
        last = run.finish();
    } catch (...) {
        run.abandon();
        throw;
    }
    run.trim_staging();
    return last;
}

/* --- download ---------------------------------------------------------------------------- */

void transfer_engine::download(std::span<const download_op> copies, std::span<const sync_point> wait_for,
                               transfer_path path) {
    const logical_device& dev = *m_device;
    std::lock_guard lock(m_lock);
    std::vector<piece> pieces = plan_download(dev, copies);
    if (pieces.empty()) {
        for (const sync_point& p : wait_for) m_queues.wait(p);
        return;
    }
    // Out of mapped mirrors (a CPU device): memcpy once the producers are
    // done, no submission and no fence.
    if (path == transfer_path::cpu) {
        require_mapped(dev, "download", pieces, {});
        wait_before_cpu_copy(wait_for);
        for (const piece& p : pieces) std::memcpy(p.destination, p.target->mapped() + p.offset, p.bytes);
        return;
    }
    sort_pieces(pieces);

    download_staging run(dev, m_queues, m_to_host, direction::to_host, max_submission, wait_for, "download");
    try {
        run.stage(pieces);
        const sync_point last = run.finish();
        m_queues.wait(last);
        run.deliver(last.value);
    } catch (...) {
        run.abandon();
        throw;
    }
    run.trim_staging();
}

}  // namespace usm::detail::vulkan
