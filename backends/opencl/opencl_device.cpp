// backends/opencl/opencl_device.cpp - opening a device, mirrors, sync points.
//
// Transfers are in opencl_transfer.cpp, kernels and launches in
// opencl_kernel.cpp.
#include "backends/opencl/opencl_device.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "backends/opencl/opencl_check.hpp"
#include "backends/opencl/opencl_info.hpp"

namespace usm::detail::opencl {

namespace {

/* --- opening ------------------------------------------------------------ */

// "PoCL 3.1+debian": the driver's own name and version. CL_DRIVER_VERSION is
// the version alone ("3.1+debian"); CL_PLATFORM_VERSION is "OpenCL 3.0 PoCL
// 3.1+debian  Linux, ..." where the word after the OpenCL version names the
// implementation when the platform repeats the driver version there.
// Otherwise (e.g. "OpenCL 3.0 CUDA 12.4.89" with driver 550.54) the
// platform's name is clearer: "NVIDIA CUDA 550.54".
std::string describe_driver(cl_platform_id platform, cl_device_id device, const std::string& who) {
    const std::string version = device_string(device, USM_CL_INFO(CL_DRIVER_VERSION), who);
    const std::string platform_version = platform_string(platform, USM_CL_INFO(CL_PLATFORM_VERSION), who);
    const std::size_t after_opencl = platform_version.find(' ', sizeof("OpenCL"));
    if (after_opencl != std::string::npos && platform_version.find(version) != std::string::npos) {
        const std::size_t start = after_opencl + 1;
        const std::size_t end = platform_version.find(' ', start);
        std::string implementation = platform_version.substr(start, end == std::string::npos ? end : end - start);
        if (!implementation.empty() && implementation != version) return implementation + " " + version;
    }
    return platform_string(platform, USM_CL_INFO(CL_PLATFORM_NAME), who) + " " + version;
}

device_properties read_properties(cl_platform_id platform, cl_device_id device) {
    device_properties properties;
    properties.name = device_string(device, USM_CL_INFO(CL_DEVICE_NAME), "an OpenCL device");
    const std::string& who = properties.name;
    properties.backend = usm::backend::opencl;
    properties.driver = describe_driver(platform, device, who);
    properties.memory_bytes = device_value<cl_ulong>(device, USM_CL_INFO(CL_DEVICE_GLOBAL_MEM_SIZE), who);
    properties.max_allocation = device_value<cl_ulong>(device, USM_CL_INFO(CL_DEVICE_MAX_MEM_ALLOC_SIZE), who);
    // OpenCL says nothing about which hardware runs a queue, so usm cannot
    // tell whether the transfer queue overlaps with compute. On PoCL's
    // pthread device it does not: every queue feeds the same worker threads.
    properties.dedicated_transfer_queue = false;
    // CL_DEVICE_HOST_UNIFIED_MEMORY is deprecated since OpenCL 2.0 but still
    // answered (PoCL: true); a CPU device is host memory whatever it says.
    const auto type = device_value<cl_device_type>(device, USM_CL_INFO(CL_DEVICE_TYPE), who);
    bool unified = false;
    try {
        unified = device_value<cl_bool>(device, USM_CL_INFO(CL_DEVICE_HOST_UNIFIED_MEMORY), who) != CL_FALSE;
    } catch (const error& e) {
        log(log_level::debug, e.what());
    }
    const bool cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
    properties.host_addressable = unified || cpu;
    // import_host binds the host address itself (host_mirror), which is only
    // the buffer's device address where the kernels run on this CPU, in this
    // process's address space, on memory shared with the host. A GPU may
    // cache a CL_MEM_USE_HOST_PTR buffer in its own memory and copy at
    // map/unmap, so unified memory alone is not enough. Measured on PoCL 3.1
    // (pthread): a kernel reads its USE_HOST_PTR argument at the host pointer
    // (any alignment), its writes are in host memory at clFinish without a
    // map, and host writes before the enqueue are what it reads.
    properties.host_memory_in_place = unified && cpu;
    return properties;
}

// The driver's own words about errors in the context. Drivers mostly use it
// to explain a failure that the failing call also returns as a status (which
// usm reports as an exception), so it is logged at info level: USM_LOG=info
// shows the driver's side. May be called from any driver thread, so it must
// not touch the device.
void CL_CALLBACK report_context_error(const char* message, const void*, std::size_t, void*) {
    try {
        log(log_level::info, "OpenCL driver: ", message);
    } catch (...) {
        // Never let an exception unwind into the driver.
    }
}

// Whether mirrors are to be fine-grained SVM that the host copies itself
// (CPU copies, opencl_transfer.cpp). Only on a CPU device: its SVM is the
// host's own memory (PoCL 3.1's pthread device: pocl_aligned_malloc, whatever
// the flags), whereas a GPU's fine-grained SVM may be memory the CPU reads
// slowly, across the bus. Only fine-grained: the specification lets the host
// touch coarse-grained SVM only between clEnqueueSVMMap and
// clEnqueueSVMUnmap, fine-grained SVM at any time, its updates becoming
// visible at synchronisation points (an enqueue, a completed event).
bool host_copies_mirrors(cl_device_id device, const std::string& who) {
    const auto type = device_value<cl_device_type>(device, USM_CL_INFO(CL_DEVICE_TYPE), who);
    const auto svm = device_value<cl_device_svm_capabilities>(device, USM_CL_INFO(CL_DEVICE_SVM_CAPABILITIES), who);
    return (type & CL_DEVICE_TYPE_CPU) != 0 && (svm & CL_DEVICE_SVM_FINE_GRAIN_BUFFER) != 0;
}

queue_handle create_queue(cl_context context, cl_device_id device, const std::string& who, const char* role) {
    // No properties: in order, no profiling. In-order execution is what makes
    // a serial timeline per queue enough (opencl_timeline.hpp).
    const cl_queue_properties properties[] = {0};
    cl_int status = CL_SUCCESS;
    queue_handle queue(clCreateCommandQueueWithProperties(context, device, properties, &status));
    check_cl_as(errc::unsupported, status, "clCreateCommandQueueWithProperties", who, "the ", role, " queue");
    return queue;
}

}  // namespace

opencl_device::opencl_device(std::shared_ptr<const driver> driver, cl_platform_id platform, cl_device_id device)
    : m_driver(std::move(driver)),
      m_device(device),
      m_properties(read_properties(platform, device)),
      m_health(m_properties.name),
      m_compute("compute", m_health),
      m_transfer("transfer", m_health) {
    const std::string& who = m_properties.name;
    m_max_group_size = device_value<std::size_t>(device, USM_CL_INFO(CL_DEVICE_MAX_WORK_GROUP_SIZE), who);
    m_max_group_extent = device_sizes(device, USM_CL_INFO(CL_DEVICE_MAX_WORK_ITEM_SIZES), who);
    m_max_group_extent.resize(3, 1);
    // Reported in bits.
    m_base_alignment = device_value<cl_uint>(device, USM_CL_INFO(CL_DEVICE_MEM_BASE_ADDR_ALIGN), who) / 8u;
    m_host_mirrors = host_copies_mirrors(device, who);
    m_properties.cpu_copies = m_host_mirrors;

    // A context of its own per device: devices of one platform could share
    // one, but nothing in usm moves data between two devices' mirrors
    // directly, and separate contexts keep one device's failure its own.
    const cl_context_properties context_properties[] = {CL_CONTEXT_PLATFORM,
                                                        reinterpret_cast<cl_context_properties>(platform), 0};
    cl_int status = CL_SUCCESS;
    m_context.reset(clCreateContext(context_properties, 1, &device, report_context_error, nullptr, &status));
    check_cl_as(errc::unsupported, status, "clCreateContext", who);
    m_compute.handle = create_queue(m_context.get(), device, who, "compute");
    m_transfer.handle = create_queue(m_context.get(), device, who, "transfer");
    log(log_level::info, "opened OpenCL device ", who, " (", m_properties.driver, ", ",
        format_bytes(m_properties.memory_bytes), ", largest buffer ", format_bytes(m_properties.max_allocation),
        m_host_mirrors ? "; fine-grained SVM mirrors" : "; coarse-grained SVM mirrors",
        m_properties.cpu_copies ? ", CPU copies" : "", ")");
}

opencl_device::~opencl_device() {
    // The core reaches every sync point before destroying a device; finishing
    // the queues again keeps teardown safe after a wait that threw, since
    // releasing a queue does not wait for its commands.
    wait_idle();
}

svm_mirror::~svm_mirror() { clSVMFree(m_context.get(), base()); }

/* --- mirrors ------------------------------------------------------------ */

std::unique_ptr<device_mirror> opencl_device::create_mirror(std::size_t bytes) {
    if (bytes == 0) throw_error(errc::invalid_argument, "create_mirror on ", name(), ": zero bytes");
    if (bytes > m_properties.max_allocation)
        throw_error(errc::unsupported, "create_mirror on ", name(), ": ", describe_bytes(bytes),
                    " is larger than the device's largest buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE = ",
                    describe_bytes(m_properties.max_allocation), ")");
    m_health.throw_if_lost();
    context_handle context = context_handle::retain(m_context.get());
    // Alignment 0: the driver's default, at least the largest OpenCL C type
    // (128 bytes on PoCL). CL_MEM_READ_WRITE: kernels read and write mirrors.
    // Fine-grained where the host copies mirrors itself (m_host_mirrors),
    // whether or not the copy path takes CPU copies, so both paths run on
    // the same memory.
    const cl_svm_mem_flags flags = CL_MEM_READ_WRITE | (m_host_mirrors ? CL_MEM_SVM_FINE_GRAIN_BUFFER : 0);
    void* base = clSVMAlloc(m_context.get(), flags, bytes, 0);
    if (base == nullptr)
        // clSVMAlloc reports no status, so driver_result() stays 0.
        throw_error(errc::out_of_memory, "clSVMAlloc failed on ", name(), ": no device memory for a ",
                    m_host_mirrors ? "fine" : "coarse", "-grained mirror of ", describe_bytes(bytes),
                    " (device memory ", describe_bytes(m_properties.memory_bytes), ")");
    try {
        return std::make_unique<svm_mirror>(*this, std::move(context), base, bytes, m_host_mirrors);
    } catch (...) {
        clSVMFree(m_context.get(), base);
        throw;
    }
}

std::unique_ptr<device_mirror> opencl_device::import_host(std::byte* host, std::size_t bytes) {
    const void* where = host;
    if (!m_properties.host_memory_in_place)
        throw_error(errc::unsupported, "import_host on ", name(), " of ", describe_bytes(bytes), " at host ", where,
                    ": kernels cannot use host memory in place on this device (only a CPU device with "
                    "CL_DEVICE_HOST_UNIFIED_MEMORY runs kernels on the host's own memory; elsewhere a "
                    "CL_MEM_USE_HOST_PTR buffer may be a cached copy)");
    if (host == nullptr) throw_error(errc::invalid_argument, "import_host on ", name(), ": no host memory");
    if (bytes == 0) throw_error(errc::invalid_argument, "import_host on ", name(), ": zero bytes at host ", where);
    // Page alignment is the contract's; CL_DEVICE_MEM_BASE_ADDR_ALIGN is
    // where drivers want a USE_HOST_PTR buffer to start (PoCL 3.1 uses a
    // misaligned pointer too, but warns that "this can cause various
    // problems later"; other drivers copy the buffer to an aligned one).
    constexpr std::size_t contract_page = 4096;
    const std::size_t alignment = std::max(contract_page, m_base_alignment);
    if (reinterpret_cast<std::uintptr_t>(host) % alignment != 0)
        throw_error(errc::unsupported, "import_host on ", name(), " of ", describe_bytes(bytes), " at host ", where,
                    ": the address is not a multiple of ", alignment,
                    " bytes (the page, and CL_DEVICE_MEM_BASE_ADDR_ALIGN = ", m_base_alignment,
                    " bytes), so the driver may not use it in place");
    if (bytes > m_properties.max_allocation)
        throw_error(errc::unsupported, "import_host on ", name(), " of ", describe_bytes(bytes), " at host ", where,
                    ": larger than the device's largest buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE = ",
                    describe_bytes(m_properties.max_allocation), ")");
    m_health.throw_if_lost();
    cl_int status = CL_SUCCESS;
    mem_handle buffer(clCreateBuffer(m_context.get(), CL_MEM_READ_WRITE | CL_MEM_USE_HOST_PTR, bytes, host, &status));
    // Whatever the status says (even an allocation failure), the driver
    // refused this range: unsupported, so the core migrates instead.
    if (status != CL_SUCCESS)
        throw_driver_error(errc::unsupported, status, "clCreateBuffer failed on ", name(), " with ",
                           cl_status_name(status), " (", status, "): CL_MEM_USE_HOST_PTR import of ",
                           describe_bytes(bytes), " at host ", where);
    return std::make_unique<host_mirror>(*this, std::move(buffer), host, bytes);
}

opencl_mirror& opencl_device::own_mirror(device_mirror* mirror, const char* operation) const {
    auto* own = dynamic_cast<opencl_mirror*>(mirror);
    if (own == nullptr || own->owner() != this)
        throw_error(errc::invalid_argument, operation, " on ", name(), ": mirror ", static_cast<void*>(mirror),
                    " was not created by this device");
    return *own;
}

std::uint64_t opencl_device::device_address(const device_mirror& mirror) const {
    return reinterpret_cast<std::uintptr_t>(own_mirror(const_cast<device_mirror*>(&mirror), "device_address").base());
}

svm_mirror& opencl_device::copyable_mirror(device_mirror* mirror, const char* operation) const {
    opencl_mirror& own = own_mirror(mirror, operation);
    auto* svm = dynamic_cast<svm_mirror*>(&own);
    if (svm == nullptr)
        throw_error(errc::invalid_argument, operation, " on ", name(), ": mirror ", static_cast<void*>(mirror),
                    " imports host memory at ", static_cast<void*>(own.base()), " (", describe_bytes(own.bytes()),
                    ") in place; it has no copy of its own to transfer to or from");
    return *svm;
}

/* --- sync points -------------------------------------------------------- */

opencl_device::queue& opencl_device::queue_of(sync_point point) {
    switch (point.queue) {
        case compute_queue:
            return m_compute;
        case transfer_queue:
            return m_transfer;
        default:
            throw_error(errc::invalid_argument, "sync point {queue ", point.queue, ", value ", point.value,
                        "} does not belong to OpenCL device ", name(), " (queues: 0 = compute, 1 = transfer)");
    }
}

std::vector<event_handle> opencl_device::wait_events(std::span<const sync_point> wait_for, std::uint32_t target) {
    std::vector<event_handle> events;
    events.reserve(wait_for.size());
    for (const sync_point& point : wait_for) {
        if (point.empty()) continue;
        // Asked even for the target queue, to validate the point.
        event_handle event = queue_of(point).points.pending_event(point.value);
        if (event && point.queue != target) events.push_back(std::move(event));
    }
    return events;
}

bool opencl_device::reached(sync_point point) {
    if (point.empty()) return true;
    return queue_of(point).points.reached(point.value);
}

void opencl_device::wait(sync_point point) {
    if (point.empty()) return;
    queue_of(point).points.wait(point.value);
}

void opencl_device::wait_idle() noexcept {
    for (queue* q : {&m_compute, &m_transfer}) {
        const cl_int status = clFinish(q->handle.get());
        if (status != CL_SUCCESS) {
            try {
                log(log_level::error, "clFinish failed on ", name(), " (", q->points.queue_name(), " queue) with ",
                    cl_status_name(status), " (", status, ")");
            } catch (...) {
                // wait_idle does not throw; the log is best effort.
            }
            m_health.mark_lost(status, "clFinish failed in wait_idle");
        }
        q->points.retire_finished();
    }
}

/* --- kernels that this backend does not take ----------------------------- */

std::unique_ptr<compiled_kernel> opencl_device::build_spirv(std::span<const std::uint32_t> words,
                                                            std::string_view entry) {
    // Vulkan SPIR-V (the shader execution model, buffer device addresses) is
    // not the OpenCL SPIR-V clCreateProgramWithIL takes, and PoCL 3.1 takes
    // no IL at all: OpenCL kernels come as OpenCL C.
    throw_error(errc::unsupported, "build_spirv on ", name(), " (entry ", entry, ", ", words.size(),
                " words): OpenCL devices take OpenCL C kernels; load with usm::opencl_c");
}

}  // namespace usm::detail::opencl
