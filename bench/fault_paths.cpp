// bench/fault_paths.cpp - what a host fault costs on each fault path, against
// the raw mechanisms measured in the same process:
//   raw_sigsegv     SIGSEGV + mprotect round trip on a private page
//   raw_uffd        userfaultfd round trip (handler thread, UFFDIO_ZEROPAGE)
//   first_write     usm: first host write to fresh memory (per 4 KiB written)
//   device_read     usm: host read of one word of a page a kernel wrote
//                   (fault + 4 KiB download + map), per page
// Medians of --reps repetitions (default 5). Usage: fault-paths [--json] [--reps N]
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>

#include "usm/usm.hpp"

namespace {

constexpr std::size_t page = 4096;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/// Runs `once` (which returns microseconds per fault) `reps` times.
double measure(int reps, const std::function<double()>& once) {
    std::vector<double> runs;
    for (int r = 0; r < reps; ++r) runs.push_back(once());
    return median(runs);
}

double now_us() {
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/* --- raw baselines ------------------------------------------------------ */

void open_page(int, siginfo_t* info, void*) {
    auto p = reinterpret_cast<std::uintptr_t>(info->si_addr) & ~(page - 1);
    ::mprotect(reinterpret_cast<void*>(p), page, PROT_READ | PROT_WRITE);
}

double raw_sigsegv(std::size_t pages) {
    struct sigaction sa {
    }, old{};
    sa.sa_sigaction = &open_page;
    sa.sa_flags = SA_SIGINFO;
    ::sigaction(SIGSEGV, &sa, &old);
    auto* m = static_cast<char*>(
        ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
    ::mprotect(m, pages * page, PROT_NONE);
    const double t0 = now_us();
    for (std::size_t i = 0; i < pages; ++i) m[i * page] = 1;
    const double t = (now_us() - t0) / static_cast<double>(pages);
    ::munmap(m, pages * page);
    ::sigaction(SIGSEGV, &old, nullptr);
    return t;
}

double raw_uffd(std::size_t pages) {
    const int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (fd < 0) return -1;
    uffdio_api api{UFFD_API, 0, 0};
    ::ioctl(fd, UFFDIO_API, &api);
    auto* m =
        static_cast<char*>(::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    uffdio_register reg{};
    reg.range = {reinterpret_cast<std::uintptr_t>(m), pages * page};
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    ::ioctl(fd, UFFDIO_REGISTER, &reg);
    std::atomic<bool> stop{false};
    std::thread handler([&] {
        pollfd p{fd, POLLIN, 0};
        while (!stop) {
            if (::poll(&p, 1, 10) <= 0) continue;
            uffd_msg msg{};
            if (::read(fd, &msg, sizeof msg) != sizeof msg) continue;
            uffdio_zeropage z{};
            z.range = {msg.arg.pagefault.address & ~(page - 1), page};
            ::ioctl(fd, UFFDIO_ZEROPAGE, &z);
        }
    });
    const double t0 = now_us();
    for (std::size_t i = 0; i < pages; ++i) m[i * page] = 1;
    const double t = (now_us() - t0) / static_cast<double>(pages);
    stop = true;
    handler.join();
    ::munmap(m, pages * page);
    ::close(fd);
    return t;
}

/* --- usm ---------------------------------------------------------------- */

usm::context_options on(usm::fault_path path, const std::string& backend) {
    usm::context_options o;
    o.fault = path;
    o.backend = backend;
    o.device = backend + ":0";
    return o;
}

double first_write(usm::context& ctx, std::size_t pages) {
    auto p = ctx.alloc<char>(pages * page);
    const double t0 = now_us();
    for (std::size_t i = 0; i < pages * page; i += 64) p[i] = 1;
    const double t = (now_us() - t0) / static_cast<double>(pages);
    ctx.free(p);
    return t;
}

double device_read(usm::context& ctx, usm::device& d, usm::kernel& fill, std::size_t pages, std::mt19937& rng) {
    const std::size_t n = 32 * 1024 * 1024 / sizeof(std::uint32_t);  // 32 MiB
    auto x = ctx.alloc<std::uint32_t>(n);
    d.launch(fill, usm::grid{n / 256}, usm::group{256}, usm::write(x, n), std::uint32_t(n), 7u).wait();
    std::vector<std::size_t> picks(n * 4 / page);
    for (std::size_t i = 0; i < picks.size(); ++i) picks[i] = i;
    std::shuffle(picks.begin(), picks.end(), rng);
    std::uint64_t sum = 0;
    const double t0 = now_us();
    for (std::size_t i = 0; i < pages; ++i) sum += x[picks[i] * (page / 4)];
    const double t = (now_us() - t0) / static_cast<double>(pages);
    ctx.free(x);
    if (sum == 42) std::puts("");  // keep the reads
    return t;
}

}  // namespace

int main(int argc, char** argv) try {
    bool json = false;
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--json") == 0)
            json = true;
        else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = std::atoi(argv[++i]);
    }
    std::mt19937 rng(1);
    struct row {
        std::string name, backend, path;
        double us;
    };
    std::vector<row> rows;
    rows.push_back({"raw_sigsegv", "-", "signal", measure(reps, [] { return raw_sigsegv(4096); })});
    rows.push_back({"raw_uffd", "-", "uffd", measure(reps, [] { return raw_uffd(4096); })});
    for (const char* backend : {"vulkan", "opencl"}) {
        for (usm::fault_path path : {usm::fault_path::signal, usm::fault_path::userfaultfd}) {
            const char* path_name = path == usm::fault_path::signal ? "signal" : "uffd";
            std::unique_ptr<usm::context> ctx;
            try {
                ctx = std::make_unique<usm::context>(on(path, backend));
            } catch (const usm::error& e) {
                std::fprintf(stderr, "fault-paths: skipping %s: %s\n", backend, e.what());
                break;
            }
            if (ctx->fault_handling() != path) continue;
            usm::device& d = ctx->devices().front();
            usm::kernel fill = d.backend() == usm::backend::vulkan
                                   ? d.load_kernel(usm::spirv(usm::kernels::test_fill_comp))
                                   : d.load_kernel(usm::opencl_c(usm::kernels::test_fill_cl), "test_fill");
            rows.push_back(
                {"first_write", backend, path_name, measure(reps, [&] { return first_write(*ctx, 16384); })});
            rows.push_back({"device_read", backend, path_name,
                            measure(reps, [&] { return device_read(*ctx, d, fill, 2000, rng); })});
        }
    }
    if (json) {
        std::printf("[\n");
        for (std::size_t i = 0; i < rows.size(); ++i)
            std::printf("  {\"name\": \"%s\", \"backend\": \"%s\", \"path\": \"%s\", \"us_per_page\": %.3f}%s\n",
                        rows[i].name.c_str(), rows[i].backend.c_str(), rows[i].path.c_str(), rows[i].us,
                        i + 1 < rows.size() ? "," : "");
        std::printf("]\n");
    } else {
        std::printf("%-12s %-7s %-7s %12s\n", "workload", "backend", "path", "us/page");
        for (const row& r : rows)
            std::printf("%-12s %-7s %-7s %12.2f\n", r.name.c_str(), r.backend.c_str(), r.path.c_str(), r.us);
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "fault-paths: %s\n", e.what());
    return 1;
}
