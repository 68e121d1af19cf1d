// backends/vulkan/vulkan_memory.hpp - device mirrors and host-visible staging.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/vulkan/vulkan_logical_device.hpp"
#include "core/device_interface.hpp"

namespace usm::detail::vulkan {

/* --- mirrors -------------------------------------------------------------------- */

/// An allocation's bytes on one device: a VkBuffer (storage, transfer source
/// and destination, device address) bound to its own VkDeviceMemory from a
/// DEVICE_LOCAL type. Even where that memory is host-visible (lavapipe) it is
/// a separate allocation from the host backing, so migrate mode copies.
///
/// Or, made by the importing constructor, a storage buffer (device address,
/// no transfer usage) bound to host memory imported with
/// VK_EXT_external_memory_host: kernels read and write the host's bytes in
/// place, and transfers refuse it (imported()).
class mirror final : public device_mirror {
public:
    /// Allocates `bytes` (> 0, at most device.max_allocation()). Throws
    /// invalid_argument for 0, unsupported above the device's limits (naming
    /// both), out_of_memory when the driver has no room; nothing is left
    /// allocated on throw.
    mirror(std::shared_ptr<const logical_device> device, std::size_t bytes);

    /// Imports the host memory [host, host + bytes) (the contract's
    /// import_host). `host` and `bytes` must be multiples of
    /// device.host_import_alignment; the memory must stay mapped until this
    /// mirror is destroyed, and is never freed by it. Throws invalid_argument
    /// for a null or empty range, unsupported (naming address, size,
    /// alignment or the refusing driver call) when the device cannot import
    /// it; nothing is left created on throw.
    mirror(std::shared_ptr<const logical_device> device, std::byte* host, std::size_t bytes);

    vk::Buffer buffer() const noexcept { return *m_buffer; }
    /// Device address of byte 0 (what a kernel argument carries).
    vk::DeviceAddress address() const noexcept { return m_address; }
    /// Where the host sees byte 0, on a CPU device whose mirror memory is
    /// host-visible and coherent (mapped for CPU copies); null elsewhere,
    /// and for an imported mirror (never copied: no CPU copy may take it).
    std::byte* mapped() const noexcept { return m_mapped; }
    /// True for imported host memory (the importing constructor).
    bool imported() const noexcept { return m_host != nullptr; }
    /// The imported host memory; null for an ordinary mirror.
    std::byte* host() const noexcept { return m_host; }
    const logical_device& device() const noexcept { return *m_device; }

private:
    std::shared_ptr<const logical_device> m_device;  // outlives the handles below
    vk::UniqueDeviceMemory m_memory;
    vk::UniqueBuffer m_buffer;  // destroyed before its memory
    vk::DeviceAddress m_address = 0;
    std::byte* m_mapped = nullptr;  // unmapped when m_memory is freed
    std::byte* m_host = nullptr;    // imported: owned by the caller, outlives m_memory
};

/// Whether `device` can import host memory for kernels (import_host):
/// VK_EXT_external_memory_host is enabled, storage buffers may be bound to
/// imported host allocations, and an anonymous probe mapping imports into a
/// host-visible, host-coherent memory type (so host writes before a submit
/// and a kernel's writes after its barrier need no flush or invalidate).
/// Never throws: returns false with the reason in `why_not`.
bool host_import_usable(const logical_device& device, std::string& why_not) noexcept;

/// `m` as a mirror of `device`; throws invalid_argument (naming `what`)
/// when it is null or belongs to another device or backend.
mirror& mirror_of(device_mirror* m, const logical_device& device, const char* what);

/* --- staging ---------------------------------------------------------------------- */

/// Host-visible, coherent, persistently mapped memory that transfers copy
/// through. Chunks are filled front to back by successive batches (a bump
/// allocator); a chunk is rewound only once the last submission that used it
/// has completed on the transfer timeline. The pool keeps `retain` bytes,
/// grows in `chunk` steps up to `cap` while everything is busy, and gives
/// idle chunks beyond `retain` back in trim().
///
/// Not thread-safe: the transfer engine's lock guards it.
class staging_pool {
public:
    enum class direction { to_device, to_host };

    struct sizes {
        vk::DeviceSize chunk = vk::DeviceSize(16) << 20;
        vk::DeviceSize retain = vk::DeviceSize(64) << 20;
        vk::DeviceSize cap = vk::DeviceSize(256) << 20;
    };

    struct chunk {
        vk::UniqueDeviceMemory memory;
        vk::UniqueBuffer buffer;  // destroyed before its memory
        std::byte* mapped = nullptr;
        vk::DeviceSize size = 0;
        vk::DeviceSize used = 0;       // bytes handed out since the last rewind
        std::uint64_t busy_until = 0;  // transfer value of the last submission using it
        bool pending = false;          // holds bytes of the batch being recorded
    };

    /// Where reserved bytes live: host pointer and (buffer, offset) for copies.
    struct slice {
        chunk* where = nullptr;
        vk::DeviceSize offset = 0;
        vk::DeviceSize bytes = 0;
        std::byte* host() const noexcept { return where->mapped + offset; }
        vk::Buffer buffer() const noexcept { return *where->buffer; }
    };

    staging_pool(std::shared_ptr<const logical_device> device, direction dir, sizes limits);
    staging_pool(std::shared_ptr<const logical_device> device, direction dir)
        : staging_pool(std::move(device), dir, sizes{}) {}

    /// Up to `wanted` (> 0) bytes at an `align`-aligned offset, for the batch
    /// being recorded. `completed` returns the transfer timeline value known
    /// complete; it is called only when a chunk may have to be rewound
    /// (chunks whose last use is at or below it may be). Returns nullopt
    /// when every chunk is busy and the pool is at its cap (or the driver has
    /// no memory for another chunk while some are busy): the caller submits
    /// its batch, waits for oldest_busy() and asks again. Throws
    /// out_of_memory when no chunk at all can be allocated.
    std::optional<slice> reserve(vk::DeviceSize wanted, vk::DeviceSize align,
                                 const std::function<std::uint64_t()>& completed);

    /// The chunks reserved since the last submitted()/abandoned() belong to
    /// the submission that signals transfer value `value`.
    void submitted(std::uint64_t value) noexcept;
    /// The batch being recorded will not be submitted: its reservations are
    /// dropped (the bytes come back when the chunk is next rewound).
    void abandoned() noexcept;
    /// The smallest transfer value a chunk waits for; 0 when none is busy.
    std::uint64_t oldest_busy() const noexcept;
    /// Frees idle chunks while the pool holds more than `retain` bytes.
    void trim(std::uint64_t done) noexcept;

    vk::DeviceSize capacity() const noexcept { return m_total; }

private:
    chunk* find_idle(std::uint64_t done) noexcept;
    std::unique_ptr<chunk> allocate_chunk(vk::DeviceSize bytes);

    std::shared_ptr<const logical_device> m_device;
    direction m_direction;
    sizes m_sizes;
    std::vector<std::unique_ptr<chunk>> m_chunks;  // stable addresses for slices
    chunk* m_current = nullptr;                    // where reservations go next
    vk::DeviceSize m_total = 0;
};

}  // namespace usm::detail::vulkan
