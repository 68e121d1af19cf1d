// tests/fake_backend.hpp - a device backend with no driver, for tests of the
// core's logic (policies, budgets, copy paths) with exact counts.
//
// Mirrors are plain memory, copies are memcpy, kernels are C++ functions
// registered by name. Every queued operation takes effect when it is
// submitted and completes `latency` later (so in-flight work is observable);
// CPU-path transfers complete at once. Failures can be injected per call.
// Like VulkanMemoryAllocator's tests of its algorithms, this tests decisions,
// not drivers: the product is tested on lavapipe and PoCL.
//
//   usm_test::fake::options o;           // what the fake device is
//   usm_test::fake::install(o);          // backend "fake" for new contexts
//   usm::context ctx(usm_test::fake::context_options());
//   usm_test::fake::last_device().calls() // what the core asked of it
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>

#include "core/device_interface.hpp"
#include "usm/usm.hpp"

namespace usm_test::fake {

using usm::detail::bound_arg;
using usm::detail::dims;

/// What the fake device reports and how it behaves.
struct options {
    std::string name = "fake device";
    std::uint64_t memory_bytes = std::uint64_t{1} << 30;
    std::uint64_t max_allocation = std::uint64_t{256} << 20;
    bool cpu_copies = true;             ///< device_properties::cpu_copies
    bool host_memory_in_place = false;  ///< import_host works (in-place access)
    std::chrono::microseconds latency{0};
};

/// Backend calls the core made, by kind and path.
struct call_counts {
    std::uint64_t mirrors = 0;  ///< create_mirror
    std::uint64_t imports = 0;  ///< import_host
    std::uint64_t queued_uploads = 0, cpu_uploads = 0;
    std::uint64_t queued_downloads = 0, cpu_downloads = 0;
    std::uint64_t bytes_uploaded = 0, bytes_downloaded = 0;  ///< copies and fills, either path
    std::uint64_t launches = 0;
};

/// A launch as a kernel function sees it: geometry and the bound arguments.
struct launch_view {
    dims grid, group;
    std::span<const bound_arg> args;
    /// Memory argument `i` (its mirror's bytes from the bound offset).
    template <class T>
    T* memory(std::size_t i) const {
        return reinterpret_cast<T*>(bytes_of(args[i]));
    }
    template <class T>
    T value(std::size_t i) const {
        return *static_cast<const T*>(args[i].value);
    }
    static std::byte* bytes_of(const bound_arg& a);
};

using kernel_function = std::function<void(const launch_view&)>;

/// Makes `name` a kernel of every fake device: load it with
/// dev.load_kernel(usm::opencl_c(""), name).
void define_kernel(const std::string& name, kernel_function run);

/// Which call fails next (once), with transfer_failed or out_of_memory.
enum class failing { none, upload, download, launch, create_mirror };

class device final : public usm::detail::device_backend {
public:
    explicit device(const options& o);
    ~device() override;

    const usm::device_properties& properties() const noexcept override { return m_properties; }
    std::unique_ptr<usm::detail::device_mirror> create_mirror(std::size_t bytes) override;
    std::unique_ptr<usm::detail::device_mirror> import_host(std::byte* host, std::size_t bytes) override;
    std::uint64_t device_address(const usm::detail::device_mirror& mirror) const override;
    usm::detail::sync_point upload(std::span<const usm::detail::upload_op> copies,
                                   std::span<const usm::detail::fill_op> fills,
                                   std::span<const usm::detail::sync_point> wait_for, usm::transfer_path path) override;
    void download(std::span<const usm::detail::download_op> copies, std::span<const usm::detail::sync_point> wait_for,
                  usm::transfer_path path) override;
    std::unique_ptr<usm::detail::compiled_kernel> build_spirv(std::span<const std::uint32_t> words,
                                                              std::string_view entry) override;
    std::unique_ptr<usm::detail::compiled_kernel> build_opencl_c(std::string_view source, std::string_view options,
                                                                 std::string_view entry) override;
    usm::detail::sync_point launch(usm::detail::compiled_kernel& kernel, dims grid, dims group,
                                   std::span<const bound_arg> args,
                                   std::span<const usm::detail::sync_point> wait_for) override;
    bool reached(usm::detail::sync_point point) override;
    void wait(usm::detail::sync_point point) override;
    void wait_idle() noexcept override;

    call_counts calls() const;
    void reset_calls();
    /// The next `call` throws (transfer_failed; out_of_memory for
    /// create_mirror) before doing anything.
    void fail_next(failing call);

private:
    using clock = std::chrono::steady_clock;
    /// A point on queue 0 (launches) or 1 (transfers), complete `latency`
    /// after now, and after every point in `after`.
    usm::detail::sync_point submit(std::uint32_t queue, std::span<const usm::detail::sync_point> after);
    clock::time_point completes_at(usm::detail::sync_point point) const;
    /// What a queued transfer would have come after: `wait_for` and every
    /// earlier transfer.
    void wait_before_cpu_copy(std::span<const usm::detail::sync_point> wait_for);
    void maybe_fail(failing call);

    options m_options;
    usm::device_properties m_properties;
    mutable std::mutex m_lock;
    std::vector<clock::time_point> m_done[2];  // per queue, by serial - 1
    call_counts m_calls;
    failing m_fail = failing::none;
};

/// Installs the backend "fake", whose driver offers one device made with `o`
/// (each context opening it gets a new device). Call again to change `o` for
/// contexts made afterwards.
void install(const options& o = {});

/// The device the last context opened.
device& last_device();

/// context_options selecting the fake backend, with `block` as the block.
usm::context_options context_options(std::size_t block = std::size_t{64} << 10);

}  // namespace usm_test::fake
