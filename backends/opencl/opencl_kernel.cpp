// backends/opencl/opencl_kernel.cpp - building OpenCL C programs and launching kernels.
#include "backends/opencl/opencl_kernel.hpp"

#include "backends/opencl/opencl_check.hpp"
#include "backends/opencl/opencl_device.hpp"

namespace usm::detail::opencl {

namespace {

static_assert(sizeof(std::size_t) >= 8, "grid * group (two 32-bit factors) must fit in size_t");

/* --- program queries ------------------------------------------------------ */

// The compiler's messages for `device`, without the trailing NUL and blank
// lines; empty if the driver has none (or cannot say).
std::string build_log(cl_program program, cl_device_id device) {
    std::size_t size = 0;
    if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, 0, nullptr, &size) != CL_SUCCESS || size == 0)
        return {};
    std::string text(size, '\0');
    if (clGetProgramBuildInfo(program, device, CL_PROGRAM_BUILD_LOG, size, text.data(), nullptr) != CL_SUCCESS)
        return {};
    while (!text.empty() && (text.back() == '\0' || text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

// "saxpy, heat2d" from CL_PROGRAM_KERNEL_NAMES ("saxpy;heat2d").
std::string kernel_names(cl_program program) {
    std::size_t size = 0;
    if (clGetProgramInfo(program, CL_PROGRAM_KERNEL_NAMES, 0, nullptr, &size) != CL_SUCCESS || size == 0)
        return "(the driver does not list them)";
    std::string names(size, '\0');
    if (clGetProgramInfo(program, CL_PROGRAM_KERNEL_NAMES, size, names.data(), nullptr) != CL_SUCCESS)
        return "(the driver does not list them)";
    while (!names.empty() && names.back() == '\0') names.pop_back();
    if (names.empty()) return "(none)";
    std::string listed;
    for (char c : names) listed += c == ';' ? std::string(", ") : std::string(1, c);
    return listed;
}

std::vector<opencl_kernel::parameter> describe_parameters(cl_kernel kernel, cl_uint count) {
    std::vector<opencl_kernel::parameter> parameters(count, opencl_kernel::parameter::unknown);
    for (cl_uint i = 0; i < count; ++i) {
        cl_kernel_arg_address_qualifier qualifier = 0;
        if (clGetKernelArgInfo(kernel, i, CL_KERNEL_ARG_ADDRESS_QUALIFIER, sizeof qualifier, &qualifier, nullptr) !=
            CL_SUCCESS)
            continue;  // CL_KERNEL_ARG_INFO_NOT_AVAILABLE: launch without the check
        switch (qualifier) {
            case CL_KERNEL_ARG_ADDRESS_GLOBAL:
            case CL_KERNEL_ARG_ADDRESS_CONSTANT:
                parameters[i] = opencl_kernel::parameter::global_pointer;
                break;
            case CL_KERNEL_ARG_ADDRESS_LOCAL:
                parameters[i] = opencl_kernel::parameter::local_pointer;
                break;
            case CL_KERNEL_ARG_ADDRESS_PRIVATE:
                parameters[i] = opencl_kernel::parameter::value;
                break;
            default:
                break;
        }
    }
    return parameters;
}

const char* describe(opencl_kernel::parameter p) noexcept {
    switch (p) {
        case opencl_kernel::parameter::value:
            return "a value parameter";
        case opencl_kernel::parameter::global_pointer:
            return "a __global pointer";
        case opencl_kernel::parameter::local_pointer:
            return "a __local pointer";
        case opencl_kernel::parameter::unknown:
            break;
    }
    return "a parameter of unknown kind";
}

std::string format_dims(const dims& d) { return concat("{", d.x, ", ", d.y, ", ", d.z, "}"); }

}  // namespace

/* --- building ------------------------------------------------------------- */

std::unique_ptr<compiled_kernel> opencl_device::build_opencl_c(std::string_view source, std::string_view options,
                                                               std::string_view entry) {
    // Touches no queue and no timeline: builds run concurrently with
    // submissions and waits (OpenCL calls are thread-safe except
    // clSetKernelArg on one kernel, which a new kernel does not share).
    // A length of 0 would tell OpenCL to read up to a NUL that a view may lack.
    if (source.empty())
        throw_error(errc::kernel_build_failed, "build_opencl_c on ", name(), ": kernel '", entry, "' has no source");
    const char* text = source.data();
    const std::size_t length = source.size();
    cl_int status = CL_SUCCESS;
    program_handle program(clCreateProgramWithSource(m_context.get(), 1, &text, &length, &status));
    check_cl_as(errc::kernel_build_failed, status, "clCreateProgramWithSource", name(), "kernel '", entry, "' (",
                describe_bytes(length), " of source)");

    // -cl-kernel-arg-info lets launch() check each argument against the
    // parameter's declaration (a value passed for a pointer would otherwise
    // reach the kernel as an address).
    const std::string build_options = concat(options, options.empty() ? "" : " ", "-cl-kernel-arg-info");
    status = clBuildProgram(program.get(), 1, &m_device, build_options.c_str(), nullptr, nullptr);
    const std::string messages = build_log(program.get(), m_device);
    if (status != CL_SUCCESS)
        throw_cl(errc::kernel_build_failed, status, "clBuildProgram", name(), "kernel '", entry, "' with options \"",
                 build_options, "\"; build log:\n", messages.empty() ? "(empty)" : messages);
    if (!messages.empty()) log(log_level::debug, "building '", entry, "' on ", name(), ":\n", messages);

    const std::string entry_name(entry);
    kernel_handle kernel(clCreateKernel(program.get(), entry_name.c_str(), &status));
    if (status != CL_SUCCESS)
        throw_cl(errc::kernel_build_failed, status, "clCreateKernel", name(), "no __kernel named '", entry,
                 "' in the program; it defines: ", kernel_names(program.get()));

    cl_uint count = 0;
    check_cl_as(errc::kernel_build_failed,
                clGetKernelInfo(kernel.get(), CL_KERNEL_NUM_ARGS, sizeof count, &count, nullptr), "clGetKernelInfo",
                name(), "CL_KERNEL_NUM_ARGS of '", entry, "'");
    std::size_t max_group = 0;
    check_cl_as(errc::kernel_build_failed,
                clGetKernelWorkGroupInfo(kernel.get(), m_device, CL_KERNEL_WORK_GROUP_SIZE, sizeof max_group,
                                         &max_group, nullptr),
                "clGetKernelWorkGroupInfo", name(), "CL_KERNEL_WORK_GROUP_SIZE of '", entry, "'");
    std::vector<opencl_kernel::parameter> parameters = describe_parameters(kernel.get(), count);
    // The program needs no handle of its own: the cl_kernel keeps it alive.
    return std::make_unique<opencl_kernel>(*this, entry_name, std::move(kernel), std::move(parameters), max_group);
}

/* --- launching ------------------------------------------------------------ */

void opencl_device::check_geometry(const opencl_kernel& kernel, dims grid, dims group) const {
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || group.x == 0 || group.y == 0 || group.z == 0)
        throw_error(errc::invalid_argument, "launch of '", kernel.entry(), "' on ", name(), ": grid ",
                    format_dims(grid), " and group ", format_dims(group), " must have no zero extent");
    const std::size_t extent[3] = {group.x, group.y, group.z};
    for (int i = 0; i < 3; ++i)
        if (extent[i] > m_max_group_extent[static_cast<std::size_t>(i)])
            throw_error(errc::invalid_argument, "launch of '", kernel.entry(), "' on ", name(), ": group ",
                        format_dims(group), " exceeds CL_DEVICE_MAX_WORK_ITEM_SIZES {", m_max_group_extent[0], ", ",
                        m_max_group_extent[1], ", ", m_max_group_extent[2], "} in dimension ", i);
    const std::size_t items = extent[0] * extent[1] * extent[2];
    if (items > m_max_group_size)
        throw_error(errc::invalid_argument, "launch of '", kernel.entry(), "' on ", name(), ": group ",
                    format_dims(group), " has ", items, " work-items; CL_DEVICE_MAX_WORK_GROUP_SIZE is ",
                    m_max_group_size);
    if (items > kernel.max_group_size())
        throw_error(errc::invalid_argument, "launch of '", kernel.entry(), "' on ", name(), ": group ",
                    format_dims(group), " has ", items, " work-items; this kernel allows at most ",
                    kernel.max_group_size(), " (CL_KERNEL_WORK_GROUP_SIZE)");
}

std::vector<std::byte*> opencl_device::argument_addresses(const opencl_kernel& k,
                                                          std::span<const bound_arg> args) const {
    const auto& parameters = k.parameters();
    if (args.size() != parameters.size())
        throw_error(errc::invalid_argument, "launch of '", k.entry(), "' on ", name(), ": the kernel takes ",
                    parameters.size(), " arguments (CL_KERNEL_NUM_ARGS), the launch gave ", args.size());
    std::vector<std::byte*> addresses(args.size(), nullptr);
    for (std::size_t i = 0; i < args.size(); ++i) {
        const bound_arg& arg = args[i];
        const opencl_kernel::parameter declared = parameters[i];
        if (arg.what == launch_arg::kind::memory) {
            if (declared != opencl_kernel::parameter::global_pointer && declared != opencl_kernel::parameter::unknown)
                throw_error(errc::invalid_argument, "launch of '", k.entry(), "' on ", name(), ": argument ", i,
                            " is memory, but the kernel declares ", describe(declared));
            // Either kind of mirror: base() is the device address of an SVM
            // mirror, or the host address of an imported one (which is its
            // device address where import_host is allowed).
            const opencl_mirror& mirror = own_mirror(arg.mirror, "launch");
            if (arg.offset > mirror.bytes() || arg.bytes > mirror.bytes() - arg.offset)
                throw_error(errc::out_of_range, "launch of '", k.entry(), "' on ", name(), ": argument ", i,
                            " [offset ", arg.offset, ", +", arg.bytes, ") runs past its mirror of ",
                            describe_bytes(mirror.bytes()));
            addresses[i] = mirror.base() + arg.offset;
        } else {
            if (declared == opencl_kernel::parameter::global_pointer)
                throw_error(errc::invalid_argument, "launch of '", k.entry(), "' on ", name(), ": argument ", i,
                            " is a __global pointer; pass memory as usm::read, usm::write or usm::read_write");
            if (declared == opencl_kernel::parameter::local_pointer)
                throw_error(errc::invalid_argument, "launch of '", k.entry(), "' on ", name(), ": argument ", i,
                            " is a __local pointer, which a usm launch cannot size; declare the __local array "
                            "inside the kernel");
            if (arg.value == nullptr || arg.size == 0)
                throw_error(errc::invalid_argument, "launch of '", k.entry(), "' on ", name(), ": argument ", i,
                            " is a value without bytes");
        }
    }
    return addresses;
}

void opencl_device::name_svm_allocations(opencl_kernel& k, std::span<const bound_arg> args) {
    // SVM allocations the kernel reaches through stored addresses (the page
    // table behind usm::any) must be named to the driver; imported host
    // memory is not SVM and needs no naming on the devices that import.
    std::vector<void*> indirect;
    for (const bound_arg& arg : args)
        for (const device_mirror* m : arg.reaches)
            if (auto* svm = dynamic_cast<const svm_mirror*>(m); svm != nullptr && svm->owner() == this)
                indirect.push_back(svm->base());
    const bool names_indirect = !indirect.empty();
    if (!names_indirect)
        // The list is kernel state: replace an earlier launch's (whose
        // mirrors may be gone since) with this launch's own SVM arguments.
        for (const bound_arg& arg : args)
            if (auto* svm = dynamic_cast<const svm_mirror*>(arg.mirror); svm != nullptr && svm->owner() == this)
                indirect.push_back(svm->base());
    if (names_indirect || (k.names_indirect() && !indirect.empty())) {
        check_cl_as(errc::invalid_argument,
                    clSetKernelExecInfo(k.handle(), CL_KERNEL_EXEC_INFO_SVM_PTRS, indirect.size() * sizeof(void*),
                                        indirect.data()),
                    "clSetKernelExecInfo(CL_KERNEL_EXEC_INFO_SVM_PTRS)", name(), "kernel '", k.entry(), "', ",
                    indirect.size(), " SVM allocations");
        k.set_names_indirect(names_indirect);
    }
}

void opencl_device::set_arguments(opencl_kernel& k, std::span<const bound_arg> args,
                                  std::span<std::byte* const> addresses) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto index = static_cast<cl_uint>(i);
        if (args[i].what == launch_arg::kind::memory)
            // An SVM pointer may point anywhere inside its allocation; an
            // imported mirror's address is passed the same way, since a
            // cl_mem argument could only start at a multiple of
            // CL_DEVICE_MEM_BASE_ADDR_ALIGN (through a sub-buffer).
            check_cl_as(errc::invalid_argument, clSetKernelArgSVMPointer(k.handle(), index, addresses[i]),
                        "clSetKernelArgSVMPointer", name(), "argument ", i, " of '", k.entry(), "' (mirror offset ",
                        args[i].offset, ")");
        else
            // By size: the OpenCL C type must have the C++ type's size
            // (docs/kernel-abi.md); the driver rejects a different size.
            check_cl_as(errc::invalid_argument, clSetKernelArg(k.handle(), index, args[i].size, args[i].value),
                        "clSetKernelArg", name(), "argument ", i, " of '", k.entry(), "' (", args[i].size, " bytes)");
    }
}

sync_point opencl_device::enqueue_kernel(opencl_kernel& k, dims grid, dims group,
                                         std::span<const sync_point> wait_for) {
    std::lock_guard submit(m_compute.submit_lock);
    const std::vector<event_handle> waits = wait_events(wait_for, compute_queue);
    const std::vector<cl_event> wait_list = raw_events(waits);
    // OpenCL's global size counts work-items: grid (work-groups) * group.
    const std::size_t local[3] = {group.x, group.y, group.z};
    const std::size_t global[3] = {std::size_t{grid.x} * group.x, std::size_t{grid.y} * group.y,
                                   std::size_t{grid.z} * group.z};
    const cl_uint work_dim = (grid.z > 1 || group.z > 1) ? 3 : (grid.y > 1 || group.y > 1) ? 2 : 1;
    event_handle done;
    check_cl(clEnqueueNDRangeKernel(m_compute.handle.get(), k.handle(), work_dim, nullptr, global, local,
                                    static_cast<cl_uint>(wait_list.size()),
                                    wait_list.empty() ? nullptr : wait_list.data(), done.out()),
             "clEnqueueNDRangeKernel", name(), "kernel '", k.entry(), "', grid ", format_dims(grid), ", group ",
             format_dims(group), ", waiting for ", wait_list.size(), " events");
    const std::uint64_t serial = m_compute.points.record(std::move(done));
    // Flushed now: the kernel may wait for another queue's events, and a
    // waiter on this point may be a queue that never flushes this one.
    const cl_int flushed = clFlush(m_compute.handle.get());
    if (flushed != CL_SUCCESS) {
        // Enqueued but never submitted: the device cannot be trusted, and the
        // point just recorded will report it lost.
        m_health.mark_lost(flushed, "clFlush of the compute queue failed");
        throw_cl(errc::device_lost, flushed, "clFlush", name(), "after launching '", k.entry(), "'");
    }
    return {compute_queue, serial};
}

sync_point opencl_device::launch(compiled_kernel& kernel, dims grid, dims group, std::span<const bound_arg> args,
                                 std::span<const sync_point> wait_for) {
    auto* k = dynamic_cast<opencl_kernel*>(&kernel);
    if (k == nullptr || k->owner() != this)
        throw_error(errc::invalid_argument, "launch of '", kernel.entry(), "' on ", name(),
                    ": the kernel was not built by this device");
    check_geometry(*k, grid, group);
    // Check and translate every argument before touching the kernel's state.
    const std::vector<std::byte*> addresses = argument_addresses(*k, args);
    m_health.throw_if_lost();
    std::lock_guard arguments(k->arguments_lock());
    name_svm_allocations(*k, args);
    set_arguments(*k, args, addresses);
    return enqueue_kernel(*k, grid, group, wait_for);
}

}  // namespace usm::detail::opencl
