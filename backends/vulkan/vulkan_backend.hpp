// backends/vulkan/vulkan_backend.hpp - the Vulkan backend's one entry point,
// as backends/registry.cpp names it. No Vulkan types: tests include it.
#pragma once

#include <memory>
#include <string>

#include "core/device_interface.hpp"

namespace usm::detail {

/// Creates a Vulkan 1.2 instance (with the validation layer when
/// USM_VK_VALIDATION=1, see vulkan_debug.hpp) and lists its devices. Returns
/// null and sets `why_not` when the loader, a Vulkan 1.2 instance or every
/// physical device is missing; never throws for a missing driver. The
/// driver, and every device opened from it, owns the instance.
std::shared_ptr<driver> load_vulkan_driver(std::string& why_not);

}  // namespace usm::detail
