// backends/vulkan/vulkan_logical_device.hpp - the VkDevice and the facts about
// it that every part of the backend reads.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "backends/vulkan/vulkan_check.hpp"

namespace usm::detail::vulkan {

class vulkan_driver;

/// Vulkan-Hpp dispatch for the device extension functions this backend
/// calls. The loader exports only core functions (which the default static
/// dispatch reaches); these are looked up with vkGetDeviceProcAddr when the
/// device is created, and stay null where the extension is not enabled.
struct extension_dispatch : vk::DispatchLoaderBase {
    PFN_vkGetMemoryHostPointerPropertiesEXT vkGetMemoryHostPointerPropertiesEXT = nullptr;  // external_memory_host
};

/// A VkDevice shared by the device backend, its mirrors and its kernels:
/// each holds a shared_ptr, so the VkDevice is destroyed only after the last
/// buffer, pipeline and semaphore made from it, whatever order the core
/// releases them in. Immutable after creation (safe to read from any thread).
struct logical_device {
    std::shared_ptr<const vulkan_driver> driver;  // first member: the instance outlives the device
    vk::UniqueDevice handle;
    vk::PhysicalDevice physical;
    std::string name;  // deviceName, for messages
    vk::PhysicalDeviceLimits limits;
    vk::PhysicalDeviceMemoryProperties memory;
    std::uint32_t compute_family = 0;
    std::uint32_t transfer_family = 0;
    vk::DeviceSize max_memory_allocation = 0;       // maxMemoryAllocationSize
    std::optional<vk::DeviceSize> max_buffer_size;  // maxBufferSize, where maintenance4 reports it
    bool scalar_block_layout = false;               // enabled feature; the SPIR-V validator must know
    bool cpu_device = false;                        // VK_PHYSICAL_DEVICE_TYPE_CPU: its memory is host memory
    extension_dispatch extensions;                  // extension functions of this VkDevice
    // VK_EXT_external_memory_host (import_host): minImportedHostPointerAlignment
    // where the extension is enabled, else 0; host_import once a probe page
    // imported into a host-visible coherent type (host_import_usable).
    vk::DeviceSize host_import_alignment = 0;
    bool host_import = false;

    vk::Device device() const noexcept { return *handle; }
    bool families_differ() const noexcept { return compute_family != transfer_family; }
    /// The largest buffer create_mirror accepts.
    vk::DeviceSize max_allocation() const noexcept {
        return max_buffer_size ? std::min(max_memory_allocation, *max_buffer_size) : max_memory_allocation;
    }
};

/// Index of a memory type in `type_bits` with every `required` flag,
/// preferring types with the `preferred` flags and without the `avoided`
/// ones; nullopt when none has the required flags.
std::optional<std::uint32_t> find_memory_type(const vk::PhysicalDeviceMemoryProperties& memory, std::uint32_t type_bits,
                                              vk::MemoryPropertyFlags required, vk::MemoryPropertyFlags preferred = {},
                                              vk::MemoryPropertyFlags avoided = {});

}  // namespace usm::detail::vulkan
