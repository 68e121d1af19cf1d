// backends/vulkan/vulkan_device.hpp - one opened Vulkan device as the core
// drives it (usm::detail::device_backend for Vulkan).
#pragma once

#include <memory>

#include "backends/vulkan/vulkan_logical_device.hpp"
#include "backends/vulkan/vulkan_queues.hpp"
#include "backends/vulkan/vulkan_transfer.hpp"
#include "core/device_interface.hpp"

namespace usm::detail::vulkan {

class vulkan_driver;

/// A logical device with a compute and a transfer queue. Thin: memory and
/// transfers live in vulkan_memory / vulkan_transfer, kernels and launches in
/// vulkan_kernel, timelines in vulkan_queues. Threading follows
/// core/device_interface.hpp; each part documents its own locks.
class vulkan_device final : public device_backend {
public:
    /// Creates the logical device (Vulkan 1.2, bufferDeviceAddress and
    /// timelineSemaphore enabled, VK_EXT_external_memory_host where offered),
    /// its queues and timelines. `driver` is kept alive as long as anything
    /// made from this device. Throws the failing call's error; nothing is left
    /// created.
    vulkan_device(std::shared_ptr<const vulkan_driver> driver, vk::PhysicalDevice physical);
    /// Waits for all submitted work, then releases the queues and staging.
    /// Mirrors and kernels still alive keep the VkDevice until they go.
    ~vulkan_device() override;

    const device_properties& properties() const noexcept override { return m_properties; }
    std::unique_ptr<device_mirror> create_mirror(std::size_t bytes) override;
    /// Imports with VK_EXT_external_memory_host (see mirror's importing
    /// constructor): `host` and `bytes` multiples of
    /// minImportedHostPointerAlignment, else unsupported naming all three.
    std::unique_ptr<device_mirror> import_host(std::byte* host, std::size_t bytes) override;
    std::uint64_t device_address(const device_mirror& mirror) const override;
    sync_point upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                      std::span<const sync_point> wait_for, transfer_path path) override;
    void download(std::span<const download_op> copies, std::span<const sync_point> wait_for,
                  transfer_path path) override;
    std::unique_ptr<compiled_kernel> build_spirv(std::span<const std::uint32_t> words, std::string_view entry) override;
    /// Always throws errc::unsupported: this backend takes SPIR-V only.
    std::unique_ptr<compiled_kernel> build_opencl_c(std::string_view source, std::string_view options,
                                                    std::string_view entry) override;
    sync_point launch(compiled_kernel& kernel, dims grid, dims group, std::span<const bound_arg> args,
                      std::span<const sync_point> wait_for) override;
    bool reached(sync_point point) override;
    void wait(sync_point point) override;
    void wait_idle() noexcept override;

private:
    std::shared_ptr<logical_device> m_device;
    device_properties m_properties;
    std::unique_ptr<queue_set> m_queues;
    std::unique_ptr<transfer_engine> m_transfers;  // refers to m_queues: declared after it, destroyed before
};

}  // namespace usm::detail::vulkan
