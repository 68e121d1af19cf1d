// backends/vulkan/vulkan_driver.hpp - the Vulkan instance and the devices it
// offers (usm::detail::driver for Vulkan).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/vulkan/vulkan_check.hpp"
#include "core/device_interface.hpp"

namespace usm::detail::vulkan {

/// Owns a VK_EXT_debug_utils messenger (an extension object: its destroy
/// function is looked up through the instance, not linked).
class debug_messenger {
public:
    debug_messenger() = default;
    debug_messenger(vk::Instance instance, const vk::DebugUtilsMessengerCreateInfoEXT& info);
    ~debug_messenger();
    debug_messenger(const debug_messenger&) = delete;
    debug_messenger& operator=(const debug_messenger&) = delete;

private:
    VkInstance m_instance = VK_NULL_HANDLE;
    VkDebugUtilsMessengerEXT m_messenger = VK_NULL_HANDLE;
    PFN_vkDestroyDebugUtilsMessengerEXT m_destroy = nullptr;
};

/// One VkInstance (Vulkan 1.2) and its physical devices. Devices opened from
/// it hold a shared_ptr to it, so the instance outlives every device.
class vulkan_driver final : public driver, public std::enable_shared_from_this<vulkan_driver> {
    struct private_tag {};

public:
    /// Creates the instance and lists its devices. Returns null and sets
    /// `why_not` when there is no usable Vulkan loader, no Vulkan 1.2
    /// instance or no physical device; never throws for a missing driver.
    static std::shared_ptr<vulkan_driver> load(std::string& why_not);

    explicit vulkan_driver(private_tag) {}

    const std::vector<device_candidate>& candidates() const noexcept override { return m_candidates; }

    /// Opens candidate `index` as a vulkan_device. Throws invalid_argument
    /// for an index out of range, unsupported for a rejected candidate, or
    /// the error of the failing Vulkan call (nothing is left created).
    std::unique_ptr<device_backend> open(std::size_t index) override;

    vk::Instance instance() const noexcept { return *m_instance; }

private:
    /// Fills the physical devices and candidates; false (with `why_not`)
    /// when the instance lists none.
    bool list_devices(std::string& why_not);

    // Members are destroyed bottom-up: the messenger before the instance.
    vk::UniqueInstance m_instance;
    std::optional<debug_messenger> m_messenger;
    std::vector<vk::PhysicalDevice> m_physical_devices;
    std::vector<device_candidate> m_candidates;
};

}  // namespace usm::detail::vulkan
