// backends/vulkan/vulkan_device.cpp - opening a device: queue choice, enabled
// features, properties; and the contract's entry points, which forward to the
// parts in vulkan_memory, vulkan_transfer, vulkan_kernel and vulkan_queues.
#include "backends/vulkan/vulkan_device.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string>
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

/* --- what the device offers ------------------------------------------------------- */

/// What usm reads of a physical device before creating its logical device.
/// The feature structs are copies to read, never to pass on (stale pNext).
struct device_offer {
    vk::PhysicalDeviceProperties basic;
    std::string name;
    std::string driver_name;  // VkPhysicalDeviceVulkan12Properties
    std::string driver_info;
    vk::DriverId driver_id{};
    vk::DeviceSize max_memory_allocation = 0;
    std::optional<vk::DeviceSize> max_buffer_size;  // with maintenance4
    bool external_memory_host = false;
    vk::DeviceSize host_import_alignment = 0;  // with external_memory_host
    vk::PhysicalDeviceFeatures core;
    vk::PhysicalDeviceVulkan11Features v11;
    vk::PhysicalDeviceVulkan12Features v12;
};

device_offer read_offer(vk::PhysicalDevice physical) {
    device_offer offer;
    offer.basic = physical.getProperties();
    offer.name = offer.basic.deviceName.data();
    const std::vector<vk::ExtensionProperties> extensions =
        take_vk(physical.enumerateDeviceExtensionProperties(), errc::unsupported,
                "vkEnumerateDeviceExtensionProperties", offer.name);
    const auto has_extension = [&extensions](const char* name) {
        return std::any_of(extensions.begin(), extensions.end(), [name](const vk::ExtensionProperties& e) {
            return std::strcmp(e.extensionName, name) == 0;
        });
    };
    const bool maintenance4 =
        offer.basic.apiVersion >= VK_API_VERSION_1_3 || has_extension(VK_KHR_MAINTENANCE_4_EXTENSION_NAME);
    // Kernels on host memory in place (import_host); its dependency,
    // VK_KHR_external_memory, is core in Vulkan 1.1.
    offer.external_memory_host = has_extension(VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    vk::StructureChain<vk::PhysicalDeviceProperties2, vk::PhysicalDeviceVulkan11Properties,
                       vk::PhysicalDeviceVulkan12Properties, vk::PhysicalDeviceMaintenance4Properties,
                       vk::PhysicalDeviceExternalMemoryHostPropertiesEXT>
        properties;
    if (!maintenance4) properties.unlink<vk::PhysicalDeviceMaintenance4Properties>();
    if (!offer.external_memory_host) properties.unlink<vk::PhysicalDeviceExternalMemoryHostPropertiesEXT>();
    physical.getProperties2(&properties.get<vk::PhysicalDeviceProperties2>());
    const auto& v12_properties = properties.get<vk::PhysicalDeviceVulkan12Properties>();
    offer.driver_name = v12_properties.driverName.data();
    offer.driver_info = v12_properties.driverInfo.data();
    offer.driver_id = v12_properties.driverID;
    offer.max_memory_allocation = properties.get<vk::PhysicalDeviceVulkan11Properties>().maxMemoryAllocationSize;
    if (maintenance4) offer.max_buffer_size = properties.get<vk::PhysicalDeviceMaintenance4Properties>().maxBufferSize;
    if (offer.external_memory_host)
        offer.host_import_alignment =
            properties.get<vk::PhysicalDeviceExternalMemoryHostPropertiesEXT>().minImportedHostPointerAlignment;

    vk::StructureChain<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan11Features,
                       vk::PhysicalDeviceVulkan12Features>
        supported;
    physical.getFeatures2(&supported.get<vk::PhysicalDeviceFeatures2>());
    offer.core = supported.get<vk::PhysicalDeviceFeatures2>().features;
    offer.v11 = supported.get<vk::PhysicalDeviceVulkan11Features>();
    offer.v12 = supported.get<vk::PhysicalDeviceVulkan12Features>();
    if (offer.basic.apiVersion < VK_API_VERSION_1_2 || !offer.v12.bufferDeviceAddress || !offer.v12.timelineSemaphore)
        throw_error(errc::unsupported, "vulkan: ", offer.name,
                    " lacks Vulkan 1.2, bufferDeviceAddress or timelineSemaphore");
    return offer;
}

/* --- what usm enables --------------------------------------------------------------- */

using feature_chain = vk::StructureChain<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan11Features,
                                         vk::PhysicalDeviceVulkan12Features>;

/// Required: buffer device addresses (kernel arguments) and timeline
/// semaphores (sync points). The rest only where supported, so kernels using
/// 64-bit, 16-bit or 8-bit types and scalar layouts build.
void choose_features(const device_offer& offer, feature_chain& enabled) {
    auto& core = enabled.get<vk::PhysicalDeviceFeatures2>().features;
    core.shaderInt64 = offer.core.shaderInt64;
    core.shaderFloat64 = offer.core.shaderFloat64;
    core.shaderInt16 = offer.core.shaderInt16;
    auto& v11 = enabled.get<vk::PhysicalDeviceVulkan11Features>();
    v11.storageBuffer16BitAccess = offer.v11.storageBuffer16BitAccess;
    auto& v12 = enabled.get<vk::PhysicalDeviceVulkan12Features>();
    v12.bufferDeviceAddress = VK_TRUE;
    v12.timelineSemaphore = VK_TRUE;
    v12.shaderInt8 = offer.v12.shaderInt8;
    v12.shaderFloat16 = offer.v12.shaderFloat16;
    v12.storageBuffer8BitAccess = offer.v12.storageBuffer8BitAccess;
    v12.scalarBlockLayout = offer.v12.scalarBlockLayout;
    v12.vulkanMemoryModel = offer.v12.vulkanMemoryModel;
    v12.vulkanMemoryModelDeviceScope = offer.v12.vulkanMemoryModelDeviceScope;
}

vk::UniqueDevice create_device(vk::PhysicalDevice physical, const device_offer& offer, const queue_choice& q,
                               feature_chain& enabled) {
    const float priorities[2] = {1.0f, 1.0f};
    std::vector<vk::DeviceQueueCreateInfo> queue_infos;
    if (q.compute_family == q.transfer_family) {
        queue_infos.emplace_back(vk::DeviceQueueCreateFlags(), q.compute_family, q.shared ? 1u : 2u, priorities);
    } else {
        queue_infos.emplace_back(vk::DeviceQueueCreateFlags(), q.compute_family, 1u, priorities);
        queue_infos.emplace_back(vk::DeviceQueueCreateFlags(), q.transfer_family, 1u, priorities);
    }
    std::vector<const char*> device_extensions;
    if (offer.external_memory_host) device_extensions.push_back(VK_EXT_EXTERNAL_MEMORY_HOST_EXTENSION_NAME);
    vk::DeviceCreateInfo device_info;
    device_info.setQueueCreateInfos(queue_infos);
    device_info.setPEnabledExtensionNames(device_extensions);
    device_info.pNext = &enabled.get<vk::PhysicalDeviceFeatures2>();
    return take_vk(physical.createDeviceUnique(device_info), errc::unsupported, "vkCreateDevice", offer.name);
}

/// The logical device's immutable facts, once its handle exists.
void describe_logical_device(logical_device& dev, const device_offer& offer, const queue_choice& q,
                             const feature_chain& enabled) {
    dev.limits = offer.basic.limits;
    dev.memory = dev.physical.getMemoryProperties();
    dev.compute_family = q.compute_family;
    dev.transfer_family = q.transfer_family;
    dev.max_memory_allocation = offer.max_memory_allocation;
    dev.max_buffer_size = offer.max_buffer_size;
    dev.scalar_block_layout = enabled.get<vk::PhysicalDeviceVulkan12Features>().scalarBlockLayout == VK_TRUE;
    if (offer.external_memory_host) {
        dev.extensions.vkGetMemoryHostPointerPropertiesEXT = reinterpret_cast<PFN_vkGetMemoryHostPointerPropertiesEXT>(
            dev.device().getProcAddr("vkGetMemoryHostPointerPropertiesEXT"));
        dev.host_import_alignment = offer.host_import_alignment;
    }
}

/* --- properties -------------------------------------------------------------------- */

device_properties describe_device(const logical_device& dev, const device_offer& offer, const queue_choice& q) {
    device_properties p;
    p.name = dev.name;
    p.backend = usm::backend::vulkan;
    if (offer.driver_name.empty())
        p.driver = concat(vk::to_string(offer.driver_id), " ", offer.basic.driverVersion);
    else
        p.driver = offer.driver_info.empty() ? offer.driver_name : offer.driver_name + " / " + offer.driver_info;
    std::uint32_t largest_heap = VK_MAX_MEMORY_HEAPS;
    for (std::uint32_t h = 0; h < dev.memory.memoryHeapCount; ++h) {
        const vk::MemoryHeap& heap = dev.memory.memoryHeaps[h];
        if ((heap.flags & vk::MemoryHeapFlagBits::eDeviceLocal) &&
            (largest_heap == VK_MAX_MEMORY_HEAPS || heap.size > dev.memory.memoryHeaps[largest_heap].size))
            largest_heap = h;
    }
    p.memory_bytes = largest_heap == VK_MAX_MEMORY_HEAPS ? 0 : dev.memory.memoryHeaps[largest_heap].size;
    p.max_allocation = dev.max_allocation();
    p.dedicated_transfer_queue = q.dedicated_transfer;
    // The CPU can address device memory when the device is the CPU, or when
    // the main device-local heap is host-visible (integrated GPUs, full
    // resizable BAR). A discrete GPU's small BAR window does not count.
    bool host_visible_main_heap = false;
    for (std::uint32_t t = 0; t < dev.memory.memoryTypeCount; ++t) {
        const vk::MemoryType& type = dev.memory.memoryTypes[t];
        const auto wanted = vk::MemoryPropertyFlagBits::eDeviceLocal | vk::MemoryPropertyFlagBits::eHostVisible;
        if (type.heapIndex == largest_heap && (type.propertyFlags & wanted) == wanted) host_visible_main_heap = true;
    }
    p.host_addressable = dev.cpu_device || host_visible_main_heap;
    p.host_memory_in_place = dev.host_import;
    // A CPU device's mirrors are all mapped (vulkan_memory.cpp takes a
    // host-coherent type for them, or fails): there the CPU may copy
    // batches itself.
    p.cpu_copies = dev.cpu_device;
    return p;
}

}  // namespace

vulkan_device::vulkan_device(std::shared_ptr<const vulkan_driver> driver, vk::PhysicalDevice physical) {
    const device_offer offer = read_offer(physical);
    auto dev = std::make_shared<logical_device>();
    dev->driver = std::move(driver);
    dev->physical = physical;
    dev->name = offer.name;
    dev->cpu_device = offer.basic.deviceType == vk::PhysicalDeviceType::eCpu;

    feature_chain enabled;
    choose_features(offer, enabled);
    const queue_choice q = choose_queues(physical.getQueueFamilyProperties(), dev->name);
    dev->handle = create_device(physical, offer, q, enabled);
    describe_logical_device(*dev, offer, q, enabled);
    std::string no_host_import;
    dev->host_import = host_import_usable(*dev, no_host_import);
    const vk::Queue compute_queue = dev->device().getQueue(q.compute_family, 0);
    const vk::Queue transfer_queue =
        q.shared ? compute_queue : dev->device().getQueue(q.transfer_family, q.transfer_index);
    m_properties = describe_device(*dev, offer, q);

    m_device = std::move(dev);
    m_queues = std::make_unique<queue_set>(m_device, compute_queue, transfer_queue);
    m_transfers = std::make_unique<transfer_engine>(m_device, *m_queues);
    log(log_level::info, "vulkan: opened ", m_properties.name, " (", m_properties.driver, "); compute family ",
        q.compute_family, ", transfers on ", transfer_text(q), "; push constants ",
        m_device->limits.maxPushConstantsSize, " bytes, largest buffer ", format_bytes(m_properties.max_allocation),
        m_properties.cpu_copies ? "; mapped mirrors (CPU copies)" : "",
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
                                 std::span<const sync_point> wait_for, transfer_path path) {
    return m_transfers->upload(copies, fills, wait_for, path);
}

void vulkan_device::download(std::span<const download_op> copies, std::span<const sync_point> wait_for,
                             transfer_path path) {
    m_transfers->download(copies, wait_for, path);
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
