// tests/fake_backend.cpp - the driverless device behind tests/fake_backend.hpp.
#include "fake_backend.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>

#include "core/diagnostics.hpp"
#include "core/fault_injection.hpp"

namespace usm_test::fake {

using namespace usm::detail;

namespace {

/// Device memory: page-aligned heap memory, or (imported) the host's own.
class mirror final : public device_mirror {
public:
    mirror(const device* owner, std::byte* bytes, std::size_t size, bool imported) noexcept
        : device_mirror(size), m_owner(owner), m_bytes(bytes), m_imported(imported) {}
    ~mirror() override {
        if (!m_imported) std::free(m_bytes);
    }
    std::byte* data() const noexcept { return m_bytes; }
    bool imported() const noexcept { return m_imported; }
    const device* owner() const noexcept { return m_owner; }

private:
    const device* m_owner;
    std::byte* m_bytes;
    bool m_imported;
};

class kernel final : public compiled_kernel {
public:
    kernel(std::string entry, kernel_function run) : compiled_kernel(std::move(entry)), m_run(std::move(run)) {}
    const kernel_function& run() const noexcept { return m_run; }

private:
    kernel_function m_run;
};

struct registry {
    std::mutex lock;
    std::map<std::string, kernel_function> kernels;
    options installed;
    device* last = nullptr;
};

registry& shared() {
    static registry r;
    return r;
}

/// `m` as a mirror of `owner` that transfers may use; invalid_argument else.
mirror& copyable(device_mirror* m, const device* owner, const char* what) {
    auto* ours = dynamic_cast<mirror*>(m);
    if (ours == nullptr || ours->owner() != owner)
        throw_error(usm::errc::invalid_argument, what, " on the fake device: a mirror of another device");
    if (ours->imported()) throw_error(usm::errc::invalid_argument, what, " on the fake device: imported host memory");
    return *ours;
}

void check_range(const mirror& m, std::size_t offset, std::size_t bytes, const char* what) {
    if (offset > m.bytes() || bytes > m.bytes() - offset)
        throw_error(usm::errc::out_of_range, what, " on the fake device: [", offset, ", +", bytes,
                    ") runs past its mirror");
}

class fake_driver final : public driver {
public:
    fake_driver() : m_candidates{{shared_options().name, ""}} {}
    const std::vector<device_candidate>& candidates() const noexcept override { return m_candidates; }
    std::unique_ptr<device_backend> open(std::size_t index) override {
        if (index != 0) throw_error(usm::errc::invalid_argument, "the fake driver has one device");
        auto made = std::make_unique<device>(shared_options());
        std::lock_guard lock(shared().lock);
        shared().last = made.get();
        return made;
    }

private:
    static options shared_options() {
        std::lock_guard lock(shared().lock);
        return shared().installed;
    }
    std::vector<device_candidate> m_candidates;
};

std::shared_ptr<driver> load_fake(std::string&) { return std::make_shared<fake_driver>(); }

}  // namespace

std::byte* launch_view::bytes_of(const bound_arg& a) { return static_cast<mirror*>(a.mirror)->data() + a.offset; }

void define_kernel(const std::string& name, kernel_function run) {
    std::lock_guard lock(shared().lock);
    shared().kernels[name] = std::move(run);
}

void install(const options& o) {
    {
        std::lock_guard lock(shared().lock);
        shared().installed = o;
    }
    testing::install_backend({usm::backend::opencl, "fake", &load_fake});
}

device& last_device() {
    std::lock_guard lock(shared().lock);
    return *shared().last;
}

usm::context_options context_options(std::size_t block) {
    usm::context_options o;
    o.backend = "fake";
    o.block_size = block;
    o.va_size = std::size_t{4} << 30;
    return o;
}

/* --- the device ------------------------------------------------------------- */

device::device(const options& o) : m_options(o) {
    m_properties.name = o.name;
    m_properties.backend = usm::backend::opencl;  // it takes kernels by entry name, as OpenCL C
    m_properties.driver = "usm fake backend (tests)";
    m_properties.memory_bytes = o.memory_bytes;
    m_properties.max_allocation = o.max_allocation;
    m_properties.host_addressable = true;
    m_properties.cpu_copies = o.cpu_copies;
    m_properties.host_memory_in_place = o.host_memory_in_place;
}

device::~device() {
    std::lock_guard lock(shared().lock);
    if (shared().last == this) shared().last = nullptr;
}

void device::maybe_fail(failing call) {
    std::lock_guard lock(m_lock);
    if (m_fail != call) return;
    m_fail = failing::none;
    throw_error(call == failing::create_mirror ? usm::errc::out_of_memory : usm::errc::transfer_failed,
                "the fake device failed (injected by a test)");
}

std::unique_ptr<device_mirror> device::create_mirror(std::size_t bytes) {
    maybe_fail(failing::create_mirror);
    if (bytes == 0 || bytes % 4096 != 0)
        throw_error(usm::errc::invalid_argument, "create_mirror on the fake device: ", bytes, " bytes");
    if (bytes > m_options.max_allocation)
        throw_error(usm::errc::unsupported, "create_mirror on the fake device: larger than its largest buffer");
    auto* memory = static_cast<std::byte*>(std::aligned_alloc(4096, bytes));
    if (memory == nullptr) throw_error(usm::errc::out_of_memory, "create_mirror on the fake device");
    std::lock_guard lock(m_lock);
    ++m_calls.mirrors;
    return std::make_unique<mirror>(this, memory, bytes, false);
}

std::unique_ptr<device_mirror> device::import_host(std::byte* host, std::size_t bytes) {
    if (!m_options.host_memory_in_place)
        throw_error(usm::errc::unsupported, "import_host on the fake device: not offered");
    std::lock_guard lock(m_lock);
    ++m_calls.imports;
    return std::make_unique<mirror>(this, host, bytes, true);
}

std::uint64_t device::device_address(const device_mirror& m) const {
    return reinterpret_cast<std::uintptr_t>(static_cast<const mirror&>(m).data());
}

device::clock::time_point device::completes_at(sync_point point) const {
    if (point.empty()) return {};
    if (point.queue > 1 || point.value > m_done[point.queue].size())
        throw_error(usm::errc::invalid_argument, "the fake device never returned sync point ", point.queue, ":",
                    point.value);
    return m_done[point.queue][point.value - 1];
}

sync_point device::submit(std::uint32_t queue, std::span<const sync_point> after) {
    clock::time_point done = clock::now() + m_options.latency;
    for (const sync_point& p : after) done = std::max(done, completes_at(p));
    if (!m_done[queue].empty()) done = std::max(done, m_done[queue].back());  // in order
    m_done[queue].push_back(done);
    return {queue, m_done[queue].size()};
}

void device::wait_before_cpu_copy(std::span<const sync_point> wait_for) {
    for (const sync_point& p : wait_for) wait(p);
    sync_point last_transfer;
    {
        std::lock_guard lock(m_lock);
        last_transfer = {1, m_done[1].size()};
    }
    wait(last_transfer);
}

sync_point device::upload(std::span<const upload_op> copies, std::span<const fill_op> fills,
                          std::span<const sync_point> wait_for, usm::transfer_path path) {
    maybe_fail(failing::upload);
    if (path == usm::transfer_path::cpu && !m_options.cpu_copies)
        throw_error(usm::errc::invalid_argument, "upload on the fake device: CPU copies not offered");
    std::size_t bytes = 0;
    for (const upload_op& op : copies) check_range(copyable(op.mirror, this, "upload"), op.offset, op.bytes, "upload");
    for (const fill_op& op : fills) check_range(copyable(op.mirror, this, "fill"), op.offset, op.bytes, "fill");
    if (path == usm::transfer_path::cpu) wait_before_cpu_copy(wait_for);
    for (const fill_op& op : fills) std::memset(static_cast<mirror*>(op.mirror)->data() + op.offset, 0, op.bytes);
    for (const upload_op& op : copies)
        std::memcpy(static_cast<mirror*>(op.mirror)->data() + op.offset, op.source, op.bytes);
    for (const fill_op& op : fills) bytes += op.bytes;
    for (const upload_op& op : copies) bytes += op.bytes;
    std::lock_guard lock(m_lock);
    m_calls.bytes_uploaded += bytes;
    if (path == usm::transfer_path::cpu) {
        ++m_calls.cpu_uploads;
        return {};
    }
    ++m_calls.queued_uploads;
    return submit(1, wait_for);
}

void device::download(std::span<const download_op> copies, std::span<const sync_point> wait_for,
                      usm::transfer_path path) {
    maybe_fail(failing::download);
    if (path == usm::transfer_path::cpu && !m_options.cpu_copies)
        throw_error(usm::errc::invalid_argument, "download on the fake device: CPU copies not offered");
    for (const download_op& op : copies)
        check_range(copyable(op.mirror, this, "download"), op.offset, op.bytes, "download");
    if (path == usm::transfer_path::cpu) wait_before_cpu_copy(wait_for);
    std::size_t bytes = 0;
    for (const download_op& op : copies) {
        std::memcpy(op.destination, static_cast<mirror*>(op.mirror)->data() + op.offset, op.bytes);
        bytes += op.bytes;
    }
    sync_point queued;
    {
        std::lock_guard lock(m_lock);
        m_calls.bytes_downloaded += bytes;
        if (path == usm::transfer_path::cpu) {
            ++m_calls.cpu_downloads;
            return;
        }
        ++m_calls.queued_downloads;
        queued = submit(1, wait_for);
    }
    wait(queued);  // synchronous, as the contract says
}

std::unique_ptr<compiled_kernel> device::build_spirv(std::span<const std::uint32_t>, std::string_view entry) {
    return build_opencl_c({}, {}, entry);
}

std::unique_ptr<compiled_kernel> device::build_opencl_c(std::string_view, std::string_view, std::string_view entry) {
    std::lock_guard lock(shared().lock);
    auto it = shared().kernels.find(std::string(entry));
    if (it == shared().kernels.end())
        throw_error(usm::errc::kernel_build_failed, "the fake device has no kernel '", std::string(entry),
                    "' (usm_test::fake::define_kernel)");
    return std::make_unique<kernel>(std::string(entry), it->second);
}

sync_point device::launch(compiled_kernel& k, dims grid, dims group, std::span<const bound_arg> args,
                          std::span<const sync_point> wait_for) {
    maybe_fail(failing::launch);
    {
        std::lock_guard lock(m_lock);
        for (const sync_point& p : wait_for) completes_at(p);  // validated before anything runs
    }
    static_cast<kernel&>(k).run()({grid, group, args});
    std::lock_guard lock(m_lock);
    ++m_calls.launches;
    return submit(0, wait_for);
}

bool device::reached(sync_point point) {
    std::lock_guard lock(m_lock);
    return clock::now() >= completes_at(point);
}

void device::wait(sync_point point) {
    clock::time_point until;
    {
        std::lock_guard lock(m_lock);
        until = completes_at(point);
    }
    std::this_thread::sleep_until(until);
}

void device::wait_idle() noexcept {
    clock::time_point until{};
    {
        std::lock_guard lock(m_lock);
        for (const auto& queue : m_done)
            if (!queue.empty()) until = std::max(until, queue.back());
    }
    std::this_thread::sleep_until(until);
}

call_counts device::calls() const {
    std::lock_guard lock(m_lock);
    return m_calls;
}

void device::reset_calls() {
    std::lock_guard lock(m_lock);
    m_calls = {};
}

void device::fail_next(failing call) {
    std::lock_guard lock(m_lock);
    m_fail = call;
}

}  // namespace usm_test::fake
