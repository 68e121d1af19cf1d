// bench/baseline_vulkan.cpp - the hand-written Vulkan program the bench
// compares usm against: its own instance and device, plain VkBuffers with
// buffer device addresses, the same SPIR-V as usm's kernels (arguments in
// push constants, docs/kernel-abi.md), one command buffer per submission.
//
// Vulkan-Hpp is configured exactly as in backends/vulkan/vulkan_check.hpp
// (no exceptions, no assert on results): libusm.so exports the same inline
// functions, so a different configuration here would break the ODR. Every
// result is checked by check() below, which throws.
#define VULKAN_HPP_NO_EXCEPTIONS 1
#define VULKAN_HPP_ASSERT_ON_RESULT(condition) static_cast<void>(0)
#include <vulkan/vulkan.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench.hpp"

namespace bench {

namespace {

void check(vk::Result r, const char* what) {
    if (r != vk::Result::eSuccess)
        throw std::runtime_error(std::string("vulkan baseline: ") + what + ": " + vk::to_string(r));
}

template <class T>
T take(vk::ResultValue<T> rv, const char* what) {
    check(rv.result, what);
    return std::move(rv.value);
}

struct vk_buffer {
    vk::Buffer device;  // what kernels use
    vk::DeviceMemory device_memory;
    vk::Buffer staging;  // explicit copy only: the host side
    vk::DeviceMemory staging_memory;
    std::byte* host = nullptr;
    std::uint64_t address = 0;
    std::size_t bytes = 0;
};

struct vk_kernel {
    vk::ShaderModule module;
    vk::Pipeline pipeline;
};

class vulkan_baseline final : public baseline_device {
public:
    vulkan_baseline(const std::string& device_name, bool mapped) : m_mapped(mapped) {
        vk::ApplicationInfo app("usm-bench baseline", 1, nullptr, 0, VK_API_VERSION_1_2);
        vk::InstanceCreateInfo ici({}, &app);
        m_instance = take(vk::createInstance(ici), "vkCreateInstance");
        for (vk::PhysicalDevice p : take(m_instance.enumeratePhysicalDevices(), "vkEnumeratePhysicalDevices")) {
            if (std::string(p.getProperties().deviceName.data()).find(device_name) != std::string::npos) {
                m_physical = p;
                break;
            }
        }
        if (!m_physical) throw std::runtime_error("vulkan baseline: no device named like " + device_name);
        const auto props =
            m_physical.getProperties2<vk::PhysicalDeviceProperties2, vk::PhysicalDeviceMaintenance3Properties>();
        m_max_push = props.get<vk::PhysicalDeviceProperties2>().properties.limits.maxPushConstantsSize;
        m_max_alloc = props.get<vk::PhysicalDeviceMaintenance3Properties>().maxMemoryAllocationSize;

        const auto families = m_physical.getQueueFamilyProperties();
        m_family = static_cast<std::uint32_t>(std::find_if(families.begin(), families.end(),
                                                           [](const vk::QueueFamilyProperties& f) {
                                                               return bool(f.queueFlags & vk::QueueFlagBits::eCompute);
                                                           }) -
                                              families.begin());
        if (m_family == families.size()) throw std::runtime_error("vulkan baseline: no compute queue");

        // Memory: device buffers from a DEVICE_LOCAL type (HOST_VISIBLE too
        // when mapped), staging from HOST_VISIBLE | HOST_COHERENT, cached if
        // there is such a type (downloads read it).
        const vk::PhysicalDeviceMemoryProperties mem = m_physical.getMemoryProperties();
        using F = vk::MemoryPropertyFlagBits;
        auto find_type = [&](vk::MemoryPropertyFlags want, vk::MemoryPropertyFlags prefer) -> std::uint32_t {
            std::uint32_t found = ~0u;
            for (std::uint32_t i = 0; i < mem.memoryTypeCount; ++i) {
                const auto f = mem.memoryTypes[i].propertyFlags;
                if ((f & want) != want) continue;
                if ((f & prefer) == prefer) return i;
                if (found == ~0u) found = i;
            }
            return found;
        };
        m_device_type = mapped ? find_type(F::eDeviceLocal | F::eHostVisible | F::eHostCoherent, {})
                               : find_type(F::eDeviceLocal, {});
        m_staging_type = find_type(F::eHostVisible | F::eHostCoherent, F::eHostCached);
        if (m_device_type == ~0u || m_staging_type == ~0u)
            throw std::runtime_error(mapped ? "vulkan baseline: no memory type is both device-local and host-visible"
                                            : "vulkan baseline: no suitable memory type");
        m_max_alloc =
            std::min<std::size_t>(m_max_alloc, mem.memoryHeaps[mem.memoryTypes[m_device_type].heapIndex].size);

        vk::PhysicalDeviceVulkan12Features v12;
        v12.bufferDeviceAddress = VK_TRUE;
        const float priority = 1.0f;
        vk::DeviceQueueCreateInfo qci({}, m_family, 1, &priority);
        vk::DeviceCreateInfo dci({}, qci);
        dci.pNext = &v12;
        m_device = take(m_physical.createDevice(dci), "vkCreateDevice");
        m_queue = m_device.getQueue(m_family, 0);
        m_pool = take(m_device.createCommandPool({vk::CommandPoolCreateFlagBits::eTransient, m_family}),
                      "vkCreateCommandPool");
        m_cmd = take(m_device.allocateCommandBuffers({m_pool, vk::CommandBufferLevel::ePrimary, 1}),
                     "vkAllocateCommandBuffers")
                    .front();
        m_fence = take(m_device.createFence({}), "vkCreateFence");
        const vk::PushConstantRange range(vk::ShaderStageFlagBits::eCompute, 0, m_max_push);
        m_layout = take(m_device.createPipelineLayout({{}, {}, range}), "vkCreatePipelineLayout");
    }

    ~vulkan_baseline() override {
        (void)m_device.waitIdle();
        release_all();
        for (auto& [key, k] : m_kernels) {
            m_device.destroyPipeline(k.pipeline);
            m_device.destroyShaderModule(k.module);
        }
        m_device.destroyPipelineLayout(m_layout);
        m_device.destroyFence(m_fence);
        m_device.destroyCommandPool(m_pool);
        m_device.destroy();
        m_instance.destroy();
    }

    std::size_t load(const kernel_source& k, usm::group g) override {
        const auto key = std::make_tuple(k.spirv.data(), g.x, g.y, g.z);
        if (auto it = m_index.find(key); it != m_index.end()) return it->second;
        vk_kernel made;
        made.module =
            take(m_device.createShaderModule({{}, k.spirv.size_bytes(), k.spirv.data()}), "vkCreateShaderModule");
        const std::uint32_t sizes[3] = {static_cast<std::uint32_t>(g.x), static_cast<std::uint32_t>(g.y),
                                        static_cast<std::uint32_t>(g.z)};
        const vk::SpecializationMapEntry entries[3] = {{0, 0, 4}, {1, 4, 4}, {2, 8, 4}};
        const vk::SpecializationInfo spec(3, entries, sizeof sizes, sizes);
        const vk::PipelineShaderStageCreateInfo stage({}, vk::ShaderStageFlagBits::eCompute, made.module, "main",
                                                      &spec);
        made.pipeline = take(m_device.createComputePipeline({}, {{}, stage, m_layout}), "vkCreateComputePipelines");
        m_kernels.emplace(m_kernels.size(), made);
        const std::size_t id = m_kernels.size() - 1;
        m_index.emplace(key, id);
        return id;
    }

    buffer alloc(std::size_t bytes) override {
        vk_buffer b;
        b.bytes = bytes;
        using U = vk::BufferUsageFlagBits;
        std::tie(b.device, b.device_memory) =
            make(bytes, U::eStorageBuffer | U::eTransferSrc | U::eTransferDst | U::eShaderDeviceAddress, m_device_type,
                 true);
        b.address = m_device.getBufferAddress({b.device});
        if (m_mapped) {
            b.host =
                static_cast<std::byte*>(take(m_device.mapMemory(b.device_memory, 0, VK_WHOLE_SIZE), "vkMapMemory"));
        } else {
            std::tie(b.staging, b.staging_memory) =
                make(bytes, U::eTransferSrc | U::eTransferDst, m_staging_type, false);
            b.host =
                static_cast<std::byte*>(take(m_device.mapMemory(b.staging_memory, 0, VK_WHOLE_SIZE), "vkMapMemory"));
        }
        m_buffers.push_back(b);
        return m_buffers.size() - 1;
    }

    void release_all() override {
        if (m_recording) sync();
        for (vk_buffer& b : m_buffers) {
            m_device.destroyBuffer(b.device);
            m_device.freeMemory(b.device_memory);
            if (b.staging) {
                m_device.destroyBuffer(b.staging);
                m_device.freeMemory(b.staging_memory);
            }
        }
        m_buffers.clear();
    }

    std::byte* host(buffer b) override { return m_buffers.at(b).host; }

    void begin_host_write(buffer, std::size_t, std::size_t) override {}

    void end_host_write(buffer id, std::size_t off, std::size_t n) override {
        if (m_mapped) return;  // host-coherent: the submission makes the writes visible
        const vk_buffer& b = m_buffers.at(id);
        record();
        m_cmd.copyBuffer(b.staging, b.device, vk::BufferCopy(off, off, n));
    }

    void zero(buffer id) override {
        record();
        m_cmd.fillBuffer(m_buffers.at(id).device, 0, VK_WHOLE_SIZE, 0);
    }

    void launch(std::size_t k, usm::grid g, usm::group, std::initializer_list<arg> args) override {
        // Pack as usm does (docs/kernel-abi.md): pointers as 8-byte device
        // addresses, values at their alignment, in declaration order.
        unsigned char push[256] = {};
        std::size_t at = 0;
        for (const arg& a : args) {
            const std::size_t size = a.is_buffer ? 8 : a.size, align = a.is_buffer ? 8 : a.align;
            at = (at + align - 1) / align * align;
            if (at + size > m_max_push) throw std::runtime_error("vulkan baseline: arguments exceed push constants");
            if (a.is_buffer) {
                const std::uint64_t address = m_buffers.at(a.b).address + a.offset;
                std::memcpy(push + at, &address, 8);
            } else {
                std::memcpy(push + at, a.bytes, a.size);
            }
            at += size;
        }
        record();
        m_cmd.bindPipeline(vk::PipelineBindPoint::eCompute, m_kernels.at(k).pipeline);
        if (at > 0)
            m_cmd.pushConstants(m_layout, vk::ShaderStageFlagBits::eCompute, 0, static_cast<std::uint32_t>(at), push);
        m_cmd.dispatch(static_cast<std::uint32_t>(g.x), static_cast<std::uint32_t>(g.y),
                       static_cast<std::uint32_t>(g.z));
    }

    void request_read(buffer id, std::size_t off, std::size_t n) override {
        if (m_mapped) {
            record();  // still a submission to wait for: the kernels before it
            return;
        }
        const vk_buffer& b = m_buffers.at(id);
        record();
        m_cmd.copyBuffer(b.device, b.staging, vk::BufferCopy(off, off, n));
    }

    void sync() override {
        if (!m_recording) return;
        // The host reads what the commands wrote.
        const vk::MemoryBarrier to_host(vk::AccessFlagBits::eMemoryWrite, vk::AccessFlagBits::eHostRead);
        m_cmd.pipelineBarrier(vk::PipelineStageFlagBits::eAllCommands, vk::PipelineStageFlagBits::eHost, {}, to_host,
                              {}, {});
        check(m_cmd.end(), "vkEndCommandBuffer");
        const vk::SubmitInfo submit({}, {}, m_cmd);
        check(m_queue.submit(submit, m_fence), "vkQueueSubmit");
        check(m_device.waitForFences(m_fence, VK_TRUE, ~std::uint64_t{0}), "vkWaitForFences");
        check(m_device.resetFences(m_fence), "vkResetFences");
        check(m_device.resetCommandPool(m_pool), "vkResetCommandPool");
        m_recording = false;
    }

    void end_host_read(buffer, std::size_t, std::size_t) override {}

    std::size_t max_buffer() const override { return m_max_alloc; }

private:
    std::pair<vk::Buffer, vk::DeviceMemory> make(std::size_t bytes, vk::BufferUsageFlags usage, std::uint32_t type,
                                                 bool device_address) {
        vk::Buffer buf = take(m_device.createBuffer({{}, bytes, usage, vk::SharingMode::eExclusive}), "vkCreateBuffer");
        const vk::MemoryRequirements req = m_device.getBufferMemoryRequirements(buf);
        vk::MemoryAllocateFlagsInfo flags(vk::MemoryAllocateFlagBits::eDeviceAddress);
        vk::MemoryAllocateInfo info(req.size, type);
        if (device_address) info.pNext = &flags;
        vk::DeviceMemory memory = take(m_device.allocateMemory(info), "vkAllocateMemory");
        check(m_device.bindBufferMemory(buf, memory, 0), "vkBindBufferMemory");
        return {buf, memory};
    }

    /// Starts the command buffer, or separates the next command from the
    /// previous ones with a barrier (each may read what the last wrote).
    void record() {
        if (!m_recording) {
            check(m_cmd.begin({vk::CommandBufferUsageFlagBits::eOneTimeSubmit}), "vkBeginCommandBuffer");
            m_recording = true;
            return;
        }
        const vk::MemoryBarrier between(vk::AccessFlagBits::eMemoryWrite,
                                        vk::AccessFlagBits::eMemoryRead | vk::AccessFlagBits::eMemoryWrite);
        m_cmd.pipelineBarrier(vk::PipelineStageFlagBits::eAllCommands, vk::PipelineStageFlagBits::eAllCommands, {},
                              between, {}, {});
    }

    bool m_mapped;
    vk::Instance m_instance;
    vk::PhysicalDevice m_physical;
    vk::Device m_device;
    vk::Queue m_queue;
    std::uint32_t m_family = 0;
    std::uint32_t m_device_type = ~0u, m_staging_type = ~0u;
    std::size_t m_max_alloc = 0;
    std::uint32_t m_max_push = 128;
    vk::CommandPool m_pool;
    vk::CommandBuffer m_cmd;
    vk::Fence m_fence;
    vk::PipelineLayout m_layout;
    bool m_recording = false;
    std::map<std::size_t, vk_kernel> m_kernels;
    std::map<std::tuple<const std::uint32_t*, std::size_t, std::size_t, std::size_t>, std::size_t> m_index;
    std::vector<vk_buffer> m_buffers;
};

}  // namespace

std::unique_ptr<baseline_device> make_vulkan_baseline(const std::string& device_name, bool mapped) {
    return std::make_unique<vulkan_baseline>(device_name, mapped);
}

}  // namespace bench
