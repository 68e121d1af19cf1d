// backends/vulkan/vulkan_memory.cpp - memory type choice, device mirrors and
// the staging pool.
#include "backends/vulkan/vulkan_memory.hpp"

#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cstdint>

namespace usm::detail::vulkan {

std::optional<std::uint32_t> find_memory_type(const vk::PhysicalDeviceMemoryProperties& memory, std::uint32_t type_bits,
                                              vk::MemoryPropertyFlags required, vk::MemoryPropertyFlags preferred,
                                              vk::MemoryPropertyFlags avoided) {
    std::optional<std::uint32_t> best;
    int best_score = -1;
    for (std::uint32_t i = 0; i < memory.memoryTypeCount; ++i) {
        if ((type_bits & (1u << i)) == 0) continue;
        const vk::MemoryPropertyFlags flags = memory.memoryTypes[i].propertyFlags;
        if ((flags & required) != required) continue;
        // Each preferred flag present and each avoided flag absent scores;
        // ties keep the driver's order, which lists faster types first.
        const int score = std::popcount(static_cast<VkMemoryPropertyFlags>(flags & preferred)) * 2 +
                          (static_cast<VkMemoryPropertyFlags>(flags & avoided) == 0 ? 1 : 0);
        if (score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

/* --- mirrors -------------------------------------------------------------------- */

mirror::mirror(std::shared_ptr<const logical_device> device, std::size_t bytes)
    : device_mirror(bytes), m_device(std::move(device)) {
    const logical_device& dev = *m_device;
    const vk::Device handle = dev.device();
    if (bytes == 0) throw_error(errc::invalid_argument, "create_mirror on ", dev.name, ": size 0");
    if (bytes > dev.max_allocation()) {
        throw_error(errc::unsupported, "create_mirror on ", dev.name, ": ", format_bytes(bytes), " (", bytes,
                    " bytes) exceeds the largest buffer the device allows: maxMemoryAllocationSize ",
                    dev.max_memory_allocation,
                    dev.max_buffer_size ? concat(", maxBufferSize ", *dev.max_buffer_size) : std::string());
    }

    // Both queues touch mirrors; with two families the buffer is shared
    // concurrently instead of transferring ownership on every migration.
    const std::uint32_t families[2] = {dev.compute_family, dev.transfer_family};
    const vk::BufferCreateInfo buffer_info(
        {}, bytes,
        vk::BufferUsageFlagBits::eStorageBuffer | vk::BufferUsageFlagBits::eTransferSrc |
            vk::BufferUsageFlagBits::eTransferDst | vk::BufferUsageFlagBits::eShaderDeviceAddress,
        dev.families_differ() ? vk::SharingMode::eConcurrent : vk::SharingMode::eExclusive,
        dev.families_differ() ? 2u : 0u, dev.families_differ() ? families : nullptr);
    m_buffer = take_vk(handle.createBufferUnique(buffer_info), errc::out_of_memory, "vkCreateBuffer", dev.name,
                       "mirror of ", format_bytes(bytes));

    const auto requirements_chain =
        handle.getBufferMemoryRequirements2<vk::MemoryRequirements2, vk::MemoryDedicatedRequirements>(
            vk::BufferMemoryRequirementsInfo2(*m_buffer));
    const vk::MemoryRequirements requirements = requirements_chain.get<vk::MemoryRequirements2>().memoryRequirements;
    const auto& dedicated = requirements_chain.get<vk::MemoryDedicatedRequirements>();
    if (requirements.size > dev.max_memory_allocation)
        throw_error(errc::unsupported, "create_mirror on ", dev.name, ": a ", format_bytes(bytes), " buffer needs ",
                    requirements.size, " bytes of memory; maxMemoryAllocationSize is ", dev.max_memory_allocation);

    // On a GPU: device-local, avoiding host-visible types where there is a
    // choice, which on a discrete GPU are the small BAR window. On a CPU
    // device the memory is host memory anyway: a type the host maps
    // coherently, so the core may copy batches with the CPU
    // (device_properties::cpu_copies promises it for every mirror).
    const auto host_access = vk::MemoryPropertyFlagBits::eHostVisible | vk::MemoryPropertyFlagBits::eHostCoherent;
    const auto type = dev.cpu_device ? find_memory_type(dev.memory, requirements.memoryTypeBits, host_access,
                                                        vk::MemoryPropertyFlagBits::eDeviceLocal)
                                     : find_memory_type(dev.memory, requirements.memoryTypeBits,
                                                        vk::MemoryPropertyFlagBits::eDeviceLocal, {},
                                                        vk::MemoryPropertyFlagBits::eHostVisible);
    const auto any_type = dev.cpu_device ? type : find_memory_type(dev.memory, requirements.memoryTypeBits, {});
    if (!type && !any_type)
        throw_error(errc::unsupported, "create_mirror on ", dev.name, ": no memory type for a storage buffer",
                    dev.cpu_device ? " that the host maps coherently (a CPU device's mirrors must be)" : "");

    const vk::MemoryAllocateFlagsInfo flags_info(vk::MemoryAllocateFlagBits::eDeviceAddress);
    const vk::MemoryDedicatedAllocateInfo dedicated_info({}, *m_buffer, &flags_info);
    const bool use_dedicated = dedicated.prefersDedicatedAllocation || dedicated.requiresDedicatedAllocation;
    const vk::MemoryAllocateInfo allocate_info(
        requirements.size, type ? *type : *any_type,
        use_dedicated ? static_cast<const void*>(&dedicated_info) : static_cast<const void*>(&flags_info));
    m_memory = take_vk(handle.allocateMemoryUnique(allocate_info), errc::out_of_memory, "vkAllocateMemory", dev.name,
                       "mirror of ", format_bytes(bytes), ", memory type ", allocate_info.memoryTypeIndex);
    check_vk(handle.bindBufferMemory(*m_buffer, *m_memory, 0), errc::out_of_memory, "vkBindBufferMemory", dev.name,
             "mirror of ", format_bytes(bytes));
    m_address = handle.getBufferAddress(vk::BufferDeviceAddressInfo(*m_buffer));

    // On a CPU device the mirror is mapped, so transfers can be CPU copies
    // (transfer_engine). On a GPU a host-visible type is the BAR window,
    // where host reads crawl: never mapped.
    if (dev.cpu_device)
        m_mapped = static_cast<std::byte*>(take_vk(handle.mapMemory(*m_memory, 0, VK_WHOLE_SIZE), errc::out_of_memory,
                                                   "vkMapMemory", dev.name, "mirror of ", format_bytes(bytes)));
}

/* --- imported host memory ------------------------------------------------------- */

namespace {

constexpr auto host_allocation = vk::ExternalMemoryHandleTypeFlagBits::eHostAllocationEXT;
constexpr auto imported_usage = vk::BufferUsageFlagBits::eStorageBuffer | vk::BufferUsageFlagBits::eShaderDeviceAddress;

/// A memory type among `type_bits` that imported host memory may use: host
/// visible and coherent, so vkQueueSubmit makes earlier host writes visible
/// to kernels and a HOST-stage barrier makes kernel writes visible to the host
/// with no flush or invalidate (imported memory is never mapped).
std::optional<std::uint32_t> import_memory_type(const logical_device& dev, std::uint32_t type_bits) {
    return find_memory_type(dev.memory, type_bits,
                            vk::MemoryPropertyFlagBits::eHostVisible | vk::MemoryPropertyFlagBits::eHostCoherent);
}

/// Every failure of an import is errc::unsupported, whatever the VkResult
/// (still carried in the error): the driver refused this range, and the
/// core migrates instead (core/device_interface.hpp, import_host).
template <class... Parts>
void check_import(vk::Result result, const char* call, std::string_view device, const Parts&... context) {
    if (static_cast<int>(result) >= 0) return;
    throw_driver_error(errc::unsupported, static_cast<long long>(result), "import_host on ", device, ": ", call,
                       " refused ", context..., ": ", result_name(result), " (", static_cast<int>(result), ")");
}

}  // namespace

mirror::mirror(std::shared_ptr<const logical_device> device, std::byte* host, std::size_t bytes)
    : device_mirror(bytes), m_device(std::move(device)), m_host(host) {
    const logical_device& dev = *m_device;
    const vk::Device handle = dev.device();
    const void* at = host;
    const std::string range = concat("host memory at ", at, " (", format_bytes(bytes), ", ", bytes, " bytes)");
    if (host == nullptr || bytes == 0)
        throw_error(errc::invalid_argument, "import_host on ", dev.name, ": ", range, " is empty");
    if (!dev.host_import)
        throw_error(errc::unsupported, "import_host on ", dev.name, ": ", range,
                    ": kernels cannot access host memory in place (VK_EXT_external_memory_host unusable)");
    const vk::DeviceSize align = dev.host_import_alignment;
    if (reinterpret_cast<std::uintptr_t>(host) % align != 0 || bytes % align != 0)
        throw_error(errc::unsupported, "import_host on ", dev.name, ": ", range,
                    ": address and size must be multiples of minImportedHostPointerAlignment ", align);
    if (bytes > dev.max_allocation())
        throw_error(errc::unsupported, "import_host on ", dev.name, ": ", range,
                    " exceeds the largest buffer the device allows (", dev.max_allocation(), " bytes)");

    const auto pointer = handle.getMemoryHostPointerPropertiesEXT(host_allocation, host, dev.extensions);
    check_import(pointer.result, "vkGetMemoryHostPointerPropertiesEXT", dev.name, range);

    // Only the compute queue touches it (never copied): exclusive sharing.
    const vk::ExternalMemoryBufferCreateInfo external_info(host_allocation);
    const vk::BufferCreateInfo buffer_info({}, bytes, imported_usage, vk::SharingMode::eExclusive, 0, nullptr,
                                           &external_info);
    m_buffer = take_vk(handle.createBufferUnique(buffer_info), errc::out_of_memory, "vkCreateBuffer", dev.name,
                       "import of ", range);
    const vk::MemoryRequirements requirements = handle.getBufferMemoryRequirements(*m_buffer);
    if (requirements.size > bytes)
        throw_error(errc::unsupported, "import_host on ", dev.name, ": ", range, ": a buffer over it needs ",
                    requirements.size, " bytes of memory");
    const auto type = import_memory_type(dev, requirements.memoryTypeBits & pointer.value.memoryTypeBits);
    if (!type)
        throw_error(errc::unsupported, "import_host on ", dev.name, ": ", range,
                    ": no host-visible coherent memory type both for a storage buffer (memoryTypeBits ",
                    requirements.memoryTypeBits,
                    ") and for this pointer (vkGetMemoryHostPointerPropertiesEXT: ", pointer.value.memoryTypeBits, ")");

    const vk::MemoryAllocateFlagsInfo flags_info(vk::MemoryAllocateFlagBits::eDeviceAddress);
    const vk::ImportMemoryHostPointerInfoEXT import_info(host_allocation, host, &flags_info);
    const vk::MemoryAllocateInfo allocate_info(bytes, *type, &import_info);
    auto allocated = handle.allocateMemoryUnique(allocate_info);
    check_import(allocated.result, "vkAllocateMemory", dev.name, range, ", memory type ", *type);
    m_memory = std::move(allocated.value);
    check_vk(handle.bindBufferMemory(*m_buffer, *m_memory, 0), errc::out_of_memory, "vkBindBufferMemory", dev.name,
             "import of ", range);
    m_address = handle.getBufferAddress(vk::BufferDeviceAddressInfo(*m_buffer));
}

bool host_import_usable(const logical_device& dev, std::string& why_not) noexcept {
    try {
        if (dev.host_import_alignment == 0 || dev.extensions.vkGetMemoryHostPointerPropertiesEXT == nullptr) {
            why_not = "no VK_EXT_external_memory_host";
            return false;
        }
        const vk::ExternalBufferProperties buffer = dev.physical.getExternalBufferProperties(
            vk::PhysicalDeviceExternalBufferInfo({}, imported_usage, host_allocation));
        if (!(buffer.externalMemoryProperties.externalMemoryFeatures &
              vk::ExternalMemoryFeatureFlagBits::eImportable)) {
            why_not = "storage buffers cannot be bound to imported host allocations";
            return false;
        }
        // One probe page, aligned as imports must be (mmap aligns to pages
        // only: map twice the alignment and use the aligned part).
        const std::size_t align = static_cast<std::size_t>(dev.host_import_alignment);
        void* region = ::mmap(nullptr, 2 * align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (region == MAP_FAILED) {
            why_not = "no probe page (mmap failed)";
            return false;
        }
        const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(region);
        void* probe = reinterpret_cast<void*>((base + align - 1) / align * align);
        const auto pointer = dev.device().getMemoryHostPointerPropertiesEXT(host_allocation, probe, dev.extensions);
        ::munmap(region, 2 * align);
        if (pointer.result != vk::Result::eSuccess) {
            why_not = concat("vkGetMemoryHostPointerPropertiesEXT refused a probe page: ", result_name(pointer.result));
            return false;
        }
        if (!import_memory_type(dev, pointer.value.memoryTypeBits)) {
            why_not = "host pointers import into no host-visible coherent memory type";
            return false;
        }
        return true;
    } catch (...) {
        why_not = "probing VK_EXT_external_memory_host failed";
        return false;
    }
}

mirror& mirror_of(device_mirror* m, const logical_device& device, const char* what) {
    auto* ours = dynamic_cast<mirror*>(m);
    if (ours == nullptr)
        throw_error(errc::invalid_argument, what, " on ", device.name,
                    m == nullptr ? ": null mirror" : ": the mirror belongs to another backend");
    if (&ours->device() != &device)
        throw_error(errc::invalid_argument, what, " on ", device.name, ": the mirror belongs to ", ours->device().name,
                    " (another device)");
    return *ours;
}

/* --- staging pool ------------------------------------------------------------------ */

staging_pool::staging_pool(std::shared_ptr<const logical_device> device, direction dir, sizes limits)
    : m_device(std::move(device)), m_direction(dir), m_sizes(limits) {}

std::unique_ptr<staging_pool::chunk> staging_pool::allocate_chunk(vk::DeviceSize bytes) {
    const logical_device& dev = *m_device;
    const vk::Device handle = dev.device();
    const bool to_device = m_direction == direction::to_device;
    const char* what = to_device ? "upload staging" : "download staging";
    auto made = std::make_unique<chunk>();
    made->size = bytes;

    // Used only by the transfer queue: exclusive sharing is enough.
    const vk::BufferCreateInfo buffer_info(
        {}, bytes, to_device ? vk::BufferUsageFlagBits::eTransferSrc : vk::BufferUsageFlagBits::eTransferDst,
        vk::SharingMode::eExclusive);
    made->buffer = take_vk(handle.createBufferUnique(buffer_info), errc::out_of_memory, "vkCreateBuffer", dev.name,
                           what, " of ", format_bytes(bytes));
    const vk::MemoryRequirements requirements = handle.getBufferMemoryRequirements(*made->buffer);

    // Coherent, so no flush or invalidate is needed; host-cached memory makes
    // the CPU's reads of downloads fast; uploads prefer system memory
    // (not device-local) so the BAR window of a discrete GPU stays free.
    const vk::MemoryPropertyFlags required =
        vk::MemoryPropertyFlagBits::eHostVisible | vk::MemoryPropertyFlagBits::eHostCoherent;
    const auto type = find_memory_type(dev.memory, requirements.memoryTypeBits, required,
                                       to_device ? vk::MemoryPropertyFlags() : vk::MemoryPropertyFlagBits::eHostCached,
                                       vk::MemoryPropertyFlagBits::eDeviceLocal);
    if (!type)
        throw_error(errc::unsupported, what, " on ", dev.name, ": no host-visible coherent memory type for a buffer");
    made->memory = take_vk(handle.allocateMemoryUnique(vk::MemoryAllocateInfo(requirements.size, *type)),
                           errc::out_of_memory, "vkAllocateMemory", dev.name, what, " of ", format_bytes(bytes));
    check_vk(handle.bindBufferMemory(*made->buffer, *made->memory, 0), errc::out_of_memory, "vkBindBufferMemory",
             dev.name, what);
    void* mapped = take_vk(handle.mapMemory(*made->memory, 0, VK_WHOLE_SIZE), errc::out_of_memory, "vkMapMemory",
                           dev.name, what, " of ", format_bytes(bytes));
    made->mapped = static_cast<std::byte*>(mapped);  // unmapped when the memory is freed
    return made;
}

staging_pool::chunk* staging_pool::find_idle(std::uint64_t done) noexcept {
    for (const auto& c : m_chunks)
        if (!c->pending && c->busy_until <= done) return c.get();
    return nullptr;
}

std::optional<staging_pool::slice> staging_pool::reserve(vk::DeviceSize wanted, vk::DeviceSize align,
                                                         const std::function<std::uint64_t()>& completed) {
    const auto aligned = [align](vk::DeviceSize at) { return (at + align - 1) / align * align; };
    // Leftovers smaller than this are skipped rather than cut into slivers.
    const vk::DeviceSize useful = std::min<vk::DeviceSize>(wanted, 64 << 10);
    const auto fits = [&](const chunk* c) { return c != nullptr && aligned(c->used) + useful <= c->size; };

    chunk* c = m_current;
    // The common case, a batch filling its current chunk, asks the timeline
    // nothing; only rewinding a chunk needs to know what has completed.
    if (!(c != nullptr && c->pending && fits(c))) {
        const std::uint64_t done = completed();
        if (c != nullptr && !c->pending && c->busy_until <= done) c->used = 0;  // idle: rewind
        if (!fits(c)) {
            c = find_idle(done);
            if (c == nullptr && m_total + m_sizes.chunk <= m_sizes.cap) {
                try {
                    m_chunks.push_back(allocate_chunk(m_sizes.chunk));
                } catch (const error& e) {
                    // With chunks in flight, waiting for one beats failing.
                    if (e.kind() != errc::out_of_memory || oldest_busy() == 0) throw;
                    return std::nullopt;
                }
                c = m_chunks.back().get();
                m_total += c->size;
            }
            if (c == nullptr) return std::nullopt;
            c->used = 0;  // idle or new (find_idle never returns a pending chunk)
            m_current = c;
        }
    }
    const vk::DeviceSize offset = aligned(c->used);
    const vk::DeviceSize bytes = std::min(wanted, c->size - offset);
    c->used = offset + bytes;
    c->pending = true;
    return slice{c, offset, bytes};
}

void staging_pool::submitted(std::uint64_t value) noexcept {
    for (const auto& c : m_chunks) {
        if (!c->pending) continue;
        c->pending = false;
        c->busy_until = value;
    }
}

void staging_pool::abandoned() noexcept {
    for (const auto& c : m_chunks) c->pending = false;
}

std::uint64_t staging_pool::oldest_busy() const noexcept {
    std::uint64_t oldest = 0;
    for (const auto& c : m_chunks)
        if (!c->pending && c->busy_until != 0 && (oldest == 0 || c->busy_until < oldest)) oldest = c->busy_until;
    return oldest;
}

void staging_pool::trim(std::uint64_t done) noexcept {
    for (auto it = m_chunks.begin(); it != m_chunks.end() && m_total > m_sizes.retain;) {
        chunk* c = it->get();
        if (c != m_current && !c->pending && c->busy_until <= done) {
            m_total -= c->size;
            it = m_chunks.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace usm::detail::vulkan
