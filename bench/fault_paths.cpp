// bench/fault_paths.cpp - what a host fault costs on each fault path, against
// the raw mechanisms measured in the same process (Google Benchmark):
//   raw_sigsegv              SIGSEGV + mprotect round trip on a private page
//   raw_uffd                 userfaultfd round trip (handler thread, UFFDIO_ZEROPAGE)
//   first_write/B/P          usm: first host write to fresh memory, per 4 KiB page
//   device_read/B/P          usm: host read of one word of a page a kernel wrote
//                            (fault + 4 KiB download + map), per page
// B is the backend, P the fault path. Each repetition times one round of
// faults; the counter us_per_page is what to read. After the runs a table
// gives each usm workload's median against its path's raw baseline.
//
//   fault-paths [--benchmark_repetitions=N] [--benchmark_filter=REGEX] ...
#include <benchmark/benchmark.h>
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
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <kernels/test_fill_cl.hpp>
#include <kernels/test_fill_comp.hpp>

#include "usm/usm.hpp"

namespace {

constexpr std::size_t page = 4096;

/// Microseconds per page of every repetition, by benchmark name, for the
/// closing ratio table.
std::map<std::string, std::vector<double>>& samples() {
    static std::map<std::string, std::vector<double>> s;
    return s;
}

/// Records one timed round of `pages` faults of benchmark `name` that took
/// `seconds`.
void record(benchmark::State& state, const std::string& name, double seconds, std::size_t pages) {
    state.SetIterationTime(seconds);
    samples()[name].push_back(seconds * 1e6 / static_cast<double>(pages));
    state.counters["us_per_page"] = seconds * 1e6 / static_cast<double>(pages);  // one iteration per repetition
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/* --- raw baselines ------------------------------------------------------ */

void open_page(int, siginfo_t* info, void*) {
    auto p = reinterpret_cast<std::uintptr_t>(info->si_addr) & ~(page - 1);
    ::mprotect(reinterpret_cast<void*>(p), page, PROT_READ | PROT_WRITE);
}

void raw_sigsegv(benchmark::State& state) {
    const std::size_t pages = 4096;
    struct sigaction sa {
    }, old{};
    sa.sa_sigaction = &open_page;
    sa.sa_flags = SA_SIGINFO;
    ::sigaction(SIGSEGV, &sa, &old);
    for (auto _ : state) {
        auto* m = static_cast<char*>(
            ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0));
        ::mprotect(m, pages * page, PROT_NONE);
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < pages; ++i) m[i * page] = 1;
        record(state, "raw_sigsegv", seconds_since(t0), pages);
        ::munmap(m, pages * page);
    }
    ::sigaction(SIGSEGV, &old, nullptr);
}

void raw_uffd(benchmark::State& state) {
    const std::size_t pages = 4096;
    for (auto _ : state) {
        const int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
        if (fd < 0) {
            state.SkipWithError("userfaultfd is not permitted here");
            return;
        }
        uffdio_api api{UFFD_API, 0, 0};
        ::ioctl(fd, UFFDIO_API, &api);
        auto* m = static_cast<char*>(
            ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        uffdio_register reg{};
        reg.range = {reinterpret_cast<std::uintptr_t>(m), pages * page};
        reg.mode = UFFDIO_REGISTER_MODE_MISSING;
        ::ioctl(fd, UFFDIO_REGISTER, &reg);
        std::atomic<bool> stop{false};
        std::thread handler([&] {  // blocks in poll, as usm's handler thread does
            pollfd p{fd, POLLIN, 0};
            while (!stop.load(std::memory_order_relaxed)) {
                if (::poll(&p, 1, 10) <= 0) continue;
                uffd_msg msg{};
                if (::read(fd, &msg, sizeof msg) != sizeof msg) continue;
                uffdio_zeropage z{};
                z.range = {msg.arg.pagefault.address & ~(page - 1), page};
                ::ioctl(fd, UFFDIO_ZEROPAGE, &z);
            }
        });
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < pages; ++i) m[i * page] = 1;
        record(state, "raw_uffd", seconds_since(t0), pages);
        stop = true;
        handler.join();
        ::munmap(m, pages * page);
        ::close(fd);
    }
}

/* --- usm ---------------------------------------------------------------- */

const char* path_name(usm::fault_path p) { return p == usm::fault_path::signal ? "signal" : "uffd"; }

/// One context per (backend, path), made on first use and kept.
struct setup {
    std::unique_ptr<usm::context> ctx;
    usm::kernel fill;
};

setup* context_for(const std::string& backend, usm::fault_path path, std::string& why_not) {
    static std::map<std::pair<std::string, usm::fault_path>, std::unique_ptr<setup>> made;
    auto& slot = made[{backend, path}];
    if (slot) return slot.get();
    usm::context_options o;
    o.fault = path;
    o.backend = backend;
    o.device = backend + ":0";
    try {
        auto s = std::make_unique<setup>();
        s->ctx = std::make_unique<usm::context>(o);
        if (s->ctx->fault_handling() != path) {
            why_not = "this fault path is not available here";
            return nullptr;
        }
        usm::device& d = s->ctx->devices().front();
        s->fill = d.backend() == usm::backend::vulkan
                      ? d.load_kernel(usm::spirv(usm::kernels::test_fill_comp))
                      : d.load_kernel(usm::opencl_c(usm::kernels::test_fill_cl), "test_fill");
        slot = std::move(s);
    } catch (const usm::error& e) {
        why_not = e.what();
        return nullptr;
    }
    return slot.get();
}

void first_write(benchmark::State& state, std::string backend, usm::fault_path path) {
    std::string why_not;
    setup* s = context_for(backend, path, why_not);
    if (s == nullptr) {
        state.SkipWithError(why_not.c_str());
        return;
    }
    const std::size_t pages = 16384;
    for (auto _ : state) {
        auto p = s->ctx->alloc<char>(pages * page);
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < pages * page; i += 64) p[i] = 1;
        record(state, "first_write/" + backend + "/" + path_name(path), seconds_since(t0), pages);
        s->ctx->free(p);
    }
}

void device_read(benchmark::State& state, std::string backend, usm::fault_path path) {
    std::string why_not;
    setup* s = context_for(backend, path, why_not);
    if (s == nullptr) {
        state.SkipWithError(why_not.c_str());
        return;
    }
    usm::device& d = s->ctx->devices().front();
    const std::size_t n = 32 * 1024 * 1024 / sizeof(std::uint32_t);  // 32 MiB
    const std::size_t pages = 2000;                                  // read at random among its 8192 pages
    std::mt19937 rng(1);
    for (auto _ : state) {
        auto x = s->ctx->alloc<std::uint32_t>(n);
        d.launch(s->fill, usm::grid{n / 256}, usm::group{256}, usm::write(x, n), std::uint32_t(n), 7u).wait();
        std::vector<std::size_t> picks(n * sizeof(std::uint32_t) / page);
        for (std::size_t i = 0; i < picks.size(); ++i) picks[i] = i;
        std::shuffle(picks.begin(), picks.end(), rng);
        std::uint64_t sum = 0;
        const auto t0 = std::chrono::steady_clock::now();
        for (std::size_t i = 0; i < pages; ++i) sum += x[picks[i] * (page / sizeof(std::uint32_t))];
        record(state, "device_read/" + backend + "/" + path_name(path), seconds_since(t0), pages);
        benchmark::DoNotOptimize(sum);
        s->ctx->free(x);
    }
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

/// Each usm workload's median against the raw mechanism of its path.
void print_ratios() {
    const auto& s = samples();
    auto find = [&](const std::string& prefix) -> const std::vector<double>* {
        for (const auto& [name, values] : s)
            if (name.rfind(prefix, 0) == 0) return &values;
        return nullptr;
    };
    std::printf("\n%-28s %12s %12s %10s\n", "median of repetitions", "us/page", "raw us/page", "x raw");
    for (const auto& [name, values] : s) {
        if (name.rfind("raw_", 0) == 0) continue;
        const bool uffd = name.find("/uffd") != std::string::npos;
        const std::vector<double>* raw = find(uffd ? "raw_uffd" : "raw_sigsegv");
        const double base = raw != nullptr ? median(*raw) : 0.0;
        std::printf("%-28s %12.2f %12.2f %10.1f\n", name.c_str(), median(values), base,
                    base > 0 ? median(values) / base : 0.0);
    }
    for (const char* raw : {"raw_sigsegv", "raw_uffd"})
        if (const auto* v = find(raw)) std::printf("%-28s %12.2f\n", raw, median(*v));
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::RegisterBenchmark("raw_sigsegv", raw_sigsegv)
        ->UseManualTime()
        ->Iterations(1)
        ->Repetitions(9)
        ->ReportAggregatesOnly(true);
    benchmark::RegisterBenchmark("raw_uffd", raw_uffd)
        ->UseManualTime()
        ->Iterations(1)
        ->Repetitions(9)
        ->ReportAggregatesOnly(true);
    for (const char* backend : {"vulkan", "opencl"}) {
        for (usm::fault_path path : {usm::fault_path::signal, usm::fault_path::userfaultfd}) {
            const std::string suffix = std::string("/") + backend + "/" + path_name(path);
            benchmark::RegisterBenchmark(("first_write" + suffix).c_str(), first_write, backend, path)
                ->UseManualTime()
                ->Iterations(1)
                ->Repetitions(9)
                ->ReportAggregatesOnly(true);
            benchmark::RegisterBenchmark(("device_read" + suffix).c_str(), device_read, backend, path)
                ->UseManualTime()
                ->Iterations(1)
                ->Repetitions(9)
                ->ReportAggregatesOnly(true);
        }
    }
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    print_ratios();
    return 0;
}
