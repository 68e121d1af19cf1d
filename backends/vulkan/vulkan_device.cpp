// backends/vulkan/vulkan_device.cpp - opening a device: queue choice, enabled
// features, properties; and the contract's entry points, which forward to the
// parts in vulkan_memory, vulkan_transfer, vulkan_kernel and vulkan_queues.
#include "backends/vulkan/vulkan_device.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/vulkan/vulkan_driver.hpp"
#include "backends/vulkan/vulkan_kernel.hpp"
#include "backends/vulkan/vulkan_memory.hpp"

namespace usm::detail::vulkan {

namespace {

/* --- queue choice -------------------------------------------------------------------
 *
 * compute:  the first family with COMPUTE (on GPUs the universal queue).
 * transfer: in order of preference
 *   1. a family with TRANSFER but neither GRAPHICS nor COMPUTE: a copy engine
 *      that runs migrations beside kernels (dedicated_transfer_queue = true);
 *   2. a second queue of the compute family, when it has more than one;
 *   3. the compute queue itself.
 *
 * lavapipe has one family (GRAPHICS | COMPUTE | TRANSFER) with one queue, so
 * it takes case 3: both lanes submit to the one VkQueue, under one mutex
 * (Vulkan requires a VkQueue to be externally synchronized), each lane with
 * its own timeline semaphore and command pool. Work then runs in submission
 * order, and copies never overlap kernels - which costs nothing there, since
 * both are CPU threads of the same process. Keeping two timelines anyway
 * means the core sees the same {queue, value} points and waits as on a GPU
 * with a copy engine, so the cross-queue ordering code is exercised on the
 * CI driver too. Buffers use EXCLUSIVE sharing there (one family) and
 * CONCURRENT where the families differ.
 */
struct queue_choice {
    std::uint32_t compute_family = 0;
    std::uint32_t transfer_family = 0;
    std::uint32_t transfer_index = 0;  // queue index within transfer_family
    bool dedicated_transfer = false;
    bool shared = false;  // transfer uses the compute VkQueue
};

queue_choice choose_queues(const std::vector<vk::QueueFamilyProperties>& families, const std::string& name) {
    queue_choice choice;
    const auto compute = std::find_if(families.begin(), families.end(), [](const vk::QueueFamilyProperties& f) {
        return f.queueCount > 0 && (f.queueFlags & vk::QueueFlagBits::eCompute);
    });
    if (compute == families.end()) throw_error(errc::unsupported, "vulkan: ", name, " has no compute queue");
    choice.compute_family = static_cast<std::uint32_t>(compute - families.begin());

    const auto copy_engine = std::find_if(families.begin(), families.end(), [](const vk::QueueFamilyProperties& f) {
        return f.queueCount > 0 && (f.queueFlags & vk::QueueFlagBits::eTransfer) &&
               !(f.queueFlags & (vk::QueueFlagBits::eGraphics | vk::QueueFlagBits::eCompute));
    });
    if (copy_engine != families.end()) {
        choice.transfer_family = static_cast<std::uint32_t>(copy_engine - families.begin());
        choice.dedicated_transfer = true;
    } else if (compute->queueCount > 1) {
        choice.transfer_family = choice.compute_family;
        choice.transfer_index = 1;
    } else {
        choice.transfer_family = choice.compute_family;
        choice.shared = true;
    }
    return choice;
}

const char* transfer_text(const queue_choice& q) {
    if (q.dedicated_transfer) return "a dedicated transfer family";
    return q.shared ? "the compute queue (shared)" : "a second queue of the compute family";
}

}  // namespace

vulkan_device::vulkan_device(std::shared_ptr<const vulkan_driver> driver, vk::PhysicalDevice physical) {
    auto dev = std::make_shared<logical_device>();
    dev->driver = std::move(driver);
    dev->physical = physical;
    const vk::PhysicalDeviceProperties basic = physical.getProperties();
    dev->name = basic.deviceName.data();
    dev->cpu_device = basic.deviceType == vk::PhysicalDeviceType::eCpu;

    /* --- what the device offers --- */
    const std::vector<vk::ExtensionProperties> extensions =
        take_vk(physical.enumerateDeviceExtensionProperties(), errc::unsupported,
                "vkEnumerateDeviceExtensionProperties", dev->name);
    const auto has_extension = [&extensions](const char* name) {
        return std::any_of(extensions.begin(), extensions.end(), [name](const vk::ExtensionProperties& e) {
            return std::strcmp(e.extensionName, name) == 0;
        });
    };
    const bool maintenance4 =
        basic.apiVersion >= VK_API_VERSION_1_3 || has_extension(VK_KHR_MAINTENANCE_4_EXTENSION_NAME);
    // Kernels on host memory in place (import_host); its dependency,
    // VK_KHR_external_memory, is core in Vulkan 1.1.
    const bool external_memory_host = has_extension(VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    vk::StructureChain<vk::PhysicalDeviceProperties2, vk::PhysicalDeviceVulkan11Properties,
                       vk::PhysicalDeviceVulkan12Properties, vk::PhysicalDeviceMaintenance4Properties,
                       vk::PhysicalDeviceExternalMemoryHostPropertiesEXT>
        properties;
    if (!maintenance4) properties.unlink<vk::PhysicalDeviceMaintenance4Properties>();
    if (!external_memory_host) properties.unlink<vk::PhysicalDeviceExternalMemoryHostPropertiesEXT>();
    physical.getProperties2(&properties.get<vk::PhysicalDeviceProperties2>());
    const auto& v11_properties = properties.get<vk::PhysicalDeviceVulkan11Properties>();
    const auto& v12_properties = properties.get<vk::PhysicalDeviceVulkan12Properties>();

    vk::StructureChain<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan11Features,
                       vk::PhysicalDeviceVulkan12Features>
        supported;
    physical.getFeatures2(&supported.get<vk::PhysicalDeviceFeatures2>());
    const auto& core_supported = supported.get<vk::PhysicalDeviceFeatures2>().features;
    const auto& v11_supported = supported.get<vk::PhysicalDeviceVulkan11Features>();
    const auto& v12_supported = supported.get<vk::PhysicalDeviceVulkan12Features>();
    if (basic.apiVersion < VK_API_VERSION_1_2 || !v12_supported.bufferDeviceAddress || !v12_supported.timelineSemaphore)
        throw_error(errc::unsupported, "vulkan: ", dev->name,
                    " lacks Vulkan 1.2, bufferDeviceAddress or timelineSemaphore");

    /* --- what usm enables --- */
    // Required: buffer device addresses (kernel arguments) and timeline
    // semaphores (sync points). The rest only where supported, so kernels
    // using 64-bit, 16-bit or 8-bit types and scalar layouts build.
    vk::StructureChain<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan11Features,
                       vk::PhysicalDeviceVulkan12Features>
        enabled;
    auto& core_enabled = enabled.get<vk::PhysicalDeviceFeatures2>().features;
    core_enabled.shaderInt64 = core_supported.shaderInt64;
    core_enabled.shaderFloat64 = core_supported.shaderFloat64;
    core_enabled.shaderInt16 = core_supported.shaderInt16;
    auto& v11_enabled = enabled.get<vk::PhysicalDeviceVulkan11Features>();
    v11_enabled.storageBuffer16BitAccess = v11_supported.storageBuffer16BitAccess;
    auto& v12_enabled = enabled.get<vk::PhysicalDeviceVulkan12Features>();
    v12_enabled.bufferDeviceAddress = VK_TRUE;
    v12_enabled.timelineSemaphore = VK_TRUE;
    v12_enabled.shaderInt8 = v12_supported.shaderInt8;
    v12_enabled.shaderFloat16 = v12_supported.shaderFloat16;
    v12_enabled.storageBuffer8BitAccess = v12_supported.storageBuffer8BitAccess;
    v12_enabled.scalarBlockLayout = v12_supported.scalarBlockLayout;
    v12_enabled.vulkanMemoryModel = v12_supported.vulkanMemoryModel;
    v12_enabled.vulkanMemoryModelDeviceScope = v12_supported.vulkanMemoryModelDeviceScope;

    /* --- queues and the device --- */
    const std::vector<vk::QueueFamilyProperties> families = physical.getQueueFamilyProperties();
    const queue_choice q = choose_queues(families, dev->name);
    const float priorities[2] = {1.0f, 1.0f};
    std::vector<vk::DeviceQueueCreateInfo> queue_infos;
    if (q.compute_family == q.transfer_family) {
        queue_infos.emplace_back(vk::DeviceQueueCreateFlags(), q.compute_family, q.shared ? 1u : 2u, priorities);
    } else {
        queue_infos.emplace_back(vk::DeviceQueueCreateFlags(), q.compute_family, 1u, priorities);
        queue_infos.emplace_back(vk::DeviceQueueCreateFlags(), q.transfer_family, 1u, priorities);
    }
    std::vector<const char*> device_extensions;
    if (external_memory_host) device_extensions.push_back(VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    vk::DeviceCreateInfo device_info;
    device_info.setQueueCreateInfos(queue_infos);
    device_info.setPEnabledExtensionNames(device_extensions);
    device_info.pNext = &enabled.get<vk::PhysicalDeviceFeatures2>();
    dev->handle = take_vk(physical.createDeviceUnique(device_info), errc::unsupported, "vkCreateDevice", dev->name);

    dev->limits = basic.limits;
    dev->memory = physical.getMemoryProperties();
    dev->compute_family = q.compute_family;
    dev->transfer_family = q.transfer_family;
    dev->max_memory_allocation = v11_properties.maxMemoryAllocationSize;
    if (maintenance4) dev->max_buffer_size = properties.get<vk::PhysicalDeviceMaintenance4Properties>().maxBufferSize;
    dev->scalar_block_layout = v12_enabled.scalarBlockLayout == VK_TRUE;
    if (external_memory_host) {
        dev->extensions.vkGetMemoryHostPointerPropertiesEXT = reinterpret_cast<PFN_vkGetMemoryHostPointerPropertiesEXT>(
            dev->device().getProcAddr("vkGetMemoryHostPointerPropertiesEXT"));
        dev->host_import_alignment =
            properties.get<vk::PhysicalDeviceExternalMemoryHostPropertiesEXT>().minImportedHostPointerAlignment;
    }
    std::string no_host_import;
    dev->host_import = host_import_usable(*dev, no_host_import);

    const vk::Queue compute_queue = dev->device().getQueue(q.compute_family, 0);
    const vk::Queue transfer_queue =
        q.shared ? compute_queue : dev->device().getQueue(q.transfer_family, q.transfer_index);

    /* --- properties --- */
    m_properties.name = dev->name;
    m_properties.backend = usm::backend::vulkan;
    const std::string driver_name = v12_properties.driverName.data();
    const std::string driver_info = v12_properties.driverInfo.data();
    if (driver_name.empty())
        m_properties.driver = concat(vk::to_string(v12_properties.driverID), " ", basic.driverVersion);
    else
        m_properties.driver = driver_info.empty() ? driver_name : driver_name + " / " + driver_info;
    std::uint32_t largest_heap = VK_MAX_MEMORY_HEAPS;
    for (std::uint32_t h = 0; h < dev->memory.memoryHeapCount; ++h) {
        const vk::MemoryHeap& heap = dev->memory.memoryHeaps[h];
        if ((heap.flags & vk::MemoryHeapFlagBits::eDeviceLocal) &&
            (largest_heap == VK_MAX_MEMORY_HEAPS || heap.size > dev->memory.memoryHeaps[largest_heap].size))
            largest_heap = h;
    }
    m_properties.memory_bytes = largest_heap == VK_MAX_MEMORY_HEAPS ? 0 : dev->memory.memoryHeaps[largest_heap].size;
    m_properties.max_allocation = dev->max_allocation();
    m_properties.dedicated_transfer_queue = q.dedicated_transfer;
    // The CPU can address device memory when the device is the CPU, or when
    // the main device-local heap is host-visible (integrated GPUs, full
    // resizable BAR). A discrete GPU's small BAR window does not count.
    bool host_visible_main_heap = false;
    for (std::uint32_t t = 0; t < dev->memory.memoryTypeCount; ++t) {
        const vk::MemoryType& type = dev->memory.memoryTypes[t];
        const auto wanted = vk::MemoryPropertyFlagBits::eDeviceLocal | vk::MemoryPropertyFlagBits::eHostVisible;
        if (type.heapIndex == largest_heap && (type.propertyFlags & wanted) == wanted) host_visible_main_heap = true;
    }
    m_properties.host_addressable = basic.deviceType == vk::PhysicalDeviceType::eCpu || host_visible_main_heap;
    m_properties.host_memory_in_place = dev->host_import;

    m_device = std::move(dev);
    m_queues = std::make_unique<queue_set>(m_device, compute_queue, transfer_queue);
    m_transfers = std::make_unique<transfer_engine>(m_device, *m_queues);
    m_properties.cpu_copy_max = m_transfers->cpu_copy_max();
    log(log_level::info, "vulkan: opened ", m_properties.name, " (", m_properties.driver, "); compute family ",
        q.compute_family, ", transfers on ", transfer_text(q), "; push constants ",
        m_device->limits.maxPushConstantsSize, " bytes, largest buffer ", format_bytes(m_properties.max_allocation),
        m_transfers->cpu_copy_max() != 0 ? concat("; CPU copies up to ", format_bytes(m_transfers->cpu_copy_max()))
                                         : std::string(),
        m_device->host_import ? concat("; kernels on host memory in place (imports aligned to ",
                                       m_device->host_import_alignment, " bytes)")
                              : concat("; no kernels on host memory in place: ", no_host_import));
}

vulkan_device::~vulkan_device() {
    // The contract has the core wait first; this makes sure anyway, so that
    // no command buffer, staging chunk or semaphore dies while in use.
    wait_idle();
    const vk::Result idle = m_device->device().waitIdle();
    if (idle != vk::Result::eSuccess) {
        try {
            log(log_level::error, "vkDeviceWaitIdle on ", m_device->name, " failed: ", result_name(idle));
        } catch (...) {
        }
    }
}

/* --- the contract -------------------------------------------------------------------------- */

std::unique_ptr<device_mirror> vulkan_device::create_mirror(std::size_t bytes) {
    return std::make_unique<mirror>(m_device, bytes);
}

std::unique_ptr<device_mirror> vulkan_device::import_host(std::byte* host, std::size_t bytes) {
    return std::make_unique<mirror>(m_device, host, bytes);
}

std::uint64_t vulkan_device::device_address(const device_mirror& m) const {
    return mirror_of(const_cast<device_mirror*>(&m), *m_device, "device_address").address();
}

sync_point vulkan_device::upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                                 std::span<const sync_point> wait_for) {
    return m_transfers->upload(copies, fills, wait_for);
}

void vulkan_device::download(std::span<const download_op> copies, std::span<const sync_point> wait_for) {
    m_transfers->download(copies, wait_for);
}

std::unique_ptr<compiled_kernel> vulkan_device::build_spirv(std::span<const std::uint32_t> words,
                                                            std::string_view entry) {
    return std::make_unique<kernel>(m_device, words, entry);
}

std::unique_ptr<compiled_kernel> vulkan_device::build_opencl_c(std::string_view /*source*/,
                                                               std::string_view /*options*/, std::string_view entry) {
    throw_error(errc::unsupported, "build_opencl_c('", entry, "') on ", m_properties.name,
                ": the Vulkan backend takes SPIR-V (usm::spirv); OpenCL C needs an OpenCL device");
}

sync_point vulkan_device::launch(compiled_kernel& compiled, dims grid, dims group, std::span<const bound_arg> args,
                                 std::span<const sync_point> wait_for) {
    auto* k = dynamic_cast<kernel*>(&compiled);
    if (k == nullptr)
        throw_error(errc::invalid_argument, "launch of '", compiled.entry(), "' on ", m_properties.name,
                    ": the kernel was not built by the Vulkan backend");
    if (&k->device() != m_device.get())
        throw_error(errc::invalid_argument, "launch of '", compiled.entry(), "' on ", m_properties.name,
                    ": the kernel was built for ", k->device().name, " (another device)");
    return launch_kernel(*m_queues, *k, grid, group, args, wait_for);
}

bool vulkan_device::reached(sync_point point) { return m_queues->reached(point); }

void vulkan_device::wait(sync_point point) { m_queues->wait(point); }

void vulkan_device::wait_idle() noexcept { m_queues->wait_idle(); }

}  // namespace usm::detail::vulkan
