// backends/vulkan/vulkan_check.cpp - VkResult names and their usm error codes.
#include "backends/vulkan/vulkan_check.hpp"

namespace usm::detail::vulkan {

const char* result_name(vk::Result result) noexcept {
    struct named {
        VkResult value;
        const char* name;
    };
#define USM_VK_RESULT(value) \
    named { value, #value }
    static constexpr named names[] = {
        USM_VK_RESULT(VK_SUCCESS),
        USM_VK_RESULT(VK_NOT_READY),
        USM_VK_RESULT(VK_TIMEOUT),
        USM_VK_RESULT(VK_INCOMPLETE),
        USM_VK_RESULT(VK_ERROR_OUT_OF_HOST_MEMORY),
        USM_VK_RESULT(VK_ERROR_OUT_OF_DEVICE_MEMORY),
        USM_VK_RESULT(VK_ERROR_INITIALIZATION_FAILED),
        USM_VK_RESULT(VK_ERROR_DEVICE_LOST),
        USM_VK_RESULT(VK_ERROR_MEMORY_MAP_FAILED),
        USM_VK_RESULT(VK_ERROR_LAYER_NOT_PRESENT),
        USM_VK_RESULT(VK_ERROR_EXTENSION_NOT_PRESENT),
        USM_VK_RESULT(VK_ERROR_FEATURE_NOT_PRESENT),
        USM_VK_RESULT(VK_ERROR_INCOMPATIBLE_DRIVER),
        USM_VK_RESULT(VK_ERROR_TOO_MANY_OBJECTS),
        USM_VK_RESULT(VK_ERROR_FORMAT_NOT_SUPPORTED),
        USM_VK_RESULT(VK_ERROR_FRAGMENTED_POOL),
        USM_VK_RESULT(VK_ERROR_UNKNOWN),
        USM_VK_RESULT(VK_ERROR_OUT_OF_POOL_MEMORY),
        USM_VK_RESULT(VK_ERROR_INVALID_EXTERNAL_HANDLE),
        USM_VK_RESULT(VK_ERROR_FRAGMENTATION),
        USM_VK_RESULT(VK_ERROR_INVALID_OPAQUE_CAPTURE_ADDRESS),
        USM_VK_RESULT(VK_PIPELINE_COMPILE_REQUIRED),
        USM_VK_RESULT(VK_ERROR_INVALID_SHADER_NV),
    };
#undef USM_VK_RESULT
    for (const named& n : names)
        if (n.value == static_cast<VkResult>(result)) return n.name;
    return "unrecognised VkResult";
}

errc error_code_for(vk::Result result, errc otherwise) noexcept {
    switch (result) {
        case vk::Result::eErrorOutOfHostMemory:
        case vk::Result::eErrorOutOfDeviceMemory:
        case vk::Result::eErrorOutOfPoolMemory:
        case vk::Result::eErrorTooManyObjects:  // maxMemoryAllocationCount reached: memory, in effect
        case vk::Result::eErrorFragmentation:
            return errc::out_of_memory;
        case vk::Result::eErrorDeviceLost:
            return errc::device_lost;
        default:
            return otherwise;
    }
}

}  // namespace usm::detail::vulkan
