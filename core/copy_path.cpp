// core/copy_path.cpp - the built-in copy-path policies: whether a transfer
// batch is copied by the CPU or by the device's transfer queue.
//
// On a device whose memory the host addresses (a CPU device: lavapipe, PoCL)
// a small batch is cheaper as a memcpy on the calling thread than as a
// submission and a fence (~50 us on lavapipe, docs/performance.md); a large
// one is better on the queue, which runs beside the host. Towards the host
// every size goes by CPU: a download is synchronous, so the caller waits for
// the bytes anyway, and through the queue it would still copy them out of
// staging itself.
#include <limits>
#include <string>

#include "core/diagnostics.hpp"
#include "usm/policy.hpp"

namespace usm {

namespace {

/// "auto": CPU copies where possible, up to a size per direction.
class size_limited_copies final : public copy_path_policy {
public:
    size_limited_copies(std::size_t max_to_device, std::size_t max_to_host) noexcept
        : m_max_to_device(max_to_device), m_max_to_host(max_to_host) {}
    std::string_view name() const noexcept override { return "auto"; }
    transfer_path choose(const transfer_request& batch) override {
        const std::size_t limit = batch.direction == transfer_direction::to_device ? m_max_to_device : m_max_to_host;
        return batch.cpu_possible && batch.bytes <= limit ? transfer_path::cpu : transfer_path::queue;
    }

private:
    std::size_t m_max_to_device;
    std::size_t m_max_to_host;
};

/// "queue": every batch on the transfer queue (what a discrete GPU does).
class queue_only final : public copy_path_policy {
public:
    std::string_view name() const noexcept override { return "queue"; }
    transfer_path choose(const transfer_request&) override { return transfer_path::queue; }
};

/// "cpu": CPU copies wherever the device allows them, at any size.
class cpu_where_possible final : public copy_path_policy {
public:
    std::string_view name() const noexcept override { return "cpu"; }
    transfer_path choose(const transfer_request& batch) override {
        return batch.cpu_possible ? transfer_path::cpu : transfer_path::queue;
    }
};

}  // namespace

std::shared_ptr<copy_path_policy> make_copy_path_policy(std::string_view name, std::size_t max_to_device,
                                                        std::size_t max_to_host) {
    if (name == "auto") return std::make_shared<size_limited_copies>(max_to_device, max_to_host);
    if (name == "queue") return std::make_shared<queue_only>();
    if (name == "cpu") return std::make_shared<cpu_where_possible>();
    detail::throw_error(errc::invalid_argument, "copy path policy '", std::string(name),
                        "' is not one of auto, queue, cpu (USM_COPY_PATH or context_options::copy_path)");
}

}  // namespace usm
