// tests/model_test.cpp - the model-checked protocol test (docs/model-test.md):
// random programs of allocations, frees, host reads and writes from several
// threads, system calls on usm memory and kernel launches on two logical
// devices, run against a real usm::context and against a plain-memory
// reference model (model_program.hpp). Every byte read is compared, and the
// page-state and MMU invariants are checked after every operation. A failure
// prints the seed and the shortest failing prefix the shrinker finds.
// Parameterized over (fault path x backend); names end in the backend.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <kernels/test_model_add_cl.hpp>
#include <kernels/test_model_add_comp.hpp>
#include <kernels/test_model_copy_any_cl.hpp>
#include <kernels/test_model_copy_any_comp.hpp>
#include <kernels/test_model_copy_cl.hpp>
#include <kernels/test_model_copy_comp.hpp>
#include <kernels/test_model_fill_cl.hpp>
#include <kernels/test_model_fill_comp.hpp>

#include "core/context_impl.hpp"
#include "model_program.hpp"
#include "support.hpp"

namespace {

using namespace usm_model;
using clock_type = std::chrono::steady_clock;

/* --- knobs (docs/model-test.md) ----------------------------------------- */

std::optional<std::uint64_t> env_number(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v, &end, 0);  // decimal, or 0x... hex
    if (errno != 0 || end == v || *end != '\0') {
        ADD_FAILURE() << name << "=" << v << " is not a number";
        return std::nullopt;
    }
    return n;
}

std::string hex(std::uint64_t v) {
    char text[32];
    std::snprintf(text, sizeof text, "0x%016llx", static_cast<unsigned long long>(v));
    return text;
}

/// Live allocations at most in the CI programs. The invariant check reads
/// /proc/self/maps once per live allocation, so its cost grows with this
/// (docs/model-test.md); six keep 10,000 checked ops well under a minute.
constexpr std::size_t default_max_live = 12;

/* --- parameters --------------------------------------------------------- */

/// One parameter per (fault path, backend); the name ends in the backend, so
/// the CTest label follows it (tests/CMakeLists.txt).
struct model_param {
    usm::fault_path path;
    const char* backend;
    std::uint64_t seed;   ///< the default first seed: each variant runs its own programs
    bool budget = false;  ///< 16 KiB blocks and a 64 KiB device budget: programs evict all the time
};

/// Under a budget, allocations of at most 8 pages: any one op fits the
/// budget (a copy declares two ranges of at most 8 pages), which is well
/// below what twelve live allocations hold.
constexpr std::size_t model_block = std::size_t{16} << 10;
constexpr std::size_t model_budget = std::size_t{64} << 10;
constexpr std::size_t model_budget_max_pages = 8;

std::string param_name(const model_param& p) {
    return std::string(p.budget ? "budget_" : "") + (p.path == usm::fault_path::signal ? "signal_" : "uffd_") +
           p.backend;
}

// gtest prints parameters in failure messages and --gtest_list_tests.
void PrintTo(const model_param& p, std::ostream* os) { *os << param_name(p) << " (seed " << hex(p.seed) << ")"; }

std::string model_param_name(const testing::TestParamInfo<model_param>& info) { return param_name(info.param); }

/* --- host threads ------------------------------------------------------- */

/// Worker threads that run one job at a time each, on request, so host
/// faults come from threads other than the one that made the context while
/// the program stays sequential. The caller blocks until the job is done;
/// its exception is rethrown on the caller's thread.
class host_workers {
public:
    explicit host_workers(std::size_t count) : m_workers(count) {
        for (worker& w : m_workers) w.thread = std::thread([this, &w] { serve(w); });
    }
    ~host_workers() {
        for (worker& w : m_workers) {
            {
                std::lock_guard lock(w.mutex);
                w.stop = true;
            }
            w.wake.notify_all();
            w.thread.join();
        }
    }
    host_workers(const host_workers&) = delete;
    host_workers& operator=(const host_workers&) = delete;

    std::size_t size() const noexcept { return m_workers.size(); }

    void run(std::size_t index, const std::function<void()>& job) {
        worker& w = m_workers.at(index);
        std::unique_lock lock(w.mutex);
        w.job = &job;
        w.error = nullptr;
        w.wake.notify_all();
        w.wake.wait(lock, [&] { return w.job == nullptr; });
        if (w.error) std::rethrow_exception(w.error);
    }

private:
    struct worker {
        std::thread thread;
        std::mutex mutex;
        std::condition_variable wake;
        const std::function<void()>* job = nullptr;
        std::exception_ptr error;
        bool stop = false;
    };

    static void serve(worker& w) {
        std::unique_lock lock(w.mutex);
        for (;;) {
            w.wake.wait(lock, [&] { return w.stop || w.job != nullptr; });
            if (w.stop) return;
            try {
                (*w.job)();
            } catch (...) {
                w.error = std::current_exception();
            }
            w.job = nullptr;
            w.wake.notify_all();
        }
    }

    std::vector<worker> m_workers;
};

/* --- comparing ---------------------------------------------------------- */

/// Nothing when `got` equals `want`; else where and how they differ.
std::optional<std::string> compare(std::span<const std::uint8_t> want, std::span<const std::uint8_t> got,
                                   std::uint32_t id, std::size_t offset, const char* how) {
    if (want.size() == got.size() && std::equal(want.begin(), want.end(), got.begin())) return std::nullopt;
    std::ostringstream s;
    if (want.size() != got.size()) {
        s << how << " of a" << id << " gave " << got.size() << " bytes, expected " << want.size();
        return s.str();
    }
    std::size_t first = want.size(), count = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
        if (want[i] == got[i]) continue;
        if (first == want.size()) first = i;
        ++count;
    }
    const std::size_t at = offset + first;
    s << how << " of a" << id << ": " << count << " of " << want.size() << " bytes differ; first at byte +" << at
      << " (page " << at / page_bytes << ", word " << at / word_bytes << "): usm has 0x" << std::hex << int{got[first]}
      << ", the model 0x" << int{want[first]};
    return s.str();
}

/* --- running a program on usm ------------------------------------------- */

enum kernel_kind : std::size_t { add_kernel, fill_kernel, copy_kernel, copy_any_kernel, kernel_kinds };

/// A failure to report: an exception (from usm or the invariant check) or a
/// byte difference, at op `position` of the program that was run.
struct run_error {
    std::size_t position;
    std::string what;
};

/// Runs programs on fresh contexts of one (fault path, backend), with two
/// logical devices of one physical device each time.
class usm_runner {
public:
    /// Checks the invariants after every `check_every`-th op and at the end.
    usm_runner(const model_param& p, std::size_t check_every)
        : m_param(p), m_workers(host_threads - 1), m_check_every(std::max<std::size_t>(1, check_every)) {}

    /// What a run saw besides its verdict.
    struct run_info {
        usm::stats stats;
        double check_seconds = 0;
    };

    /// Opens a context as the test will; a message when it cannot be.
    std::optional<std::string> probe() {
        try {
            auto ctx = open();
            if (ctx->devices().size() != device_count) {
                m_no_device = true;
                return "opened " + std::to_string(ctx->devices().size()) + " devices, not " +
                       std::to_string(device_count) + " (USM_BACKEND / USM_DEVICE override the test's choice)";
            }
            if (ctx->fault_handling() != m_param.path)
                return "the context uses another fault path (this machine must allow userfaultfd)";
        } catch (const usm::error& e) {
            if (e.kind() == usm::errc::no_device) m_no_device = true;
            return e.what();
        }
        return std::nullopt;
    }
    /// True when probe() failed for want of the devices (not for a fault).
    bool no_device() const noexcept { return m_no_device; }

    /// Runs `program` against a fresh context and a reference model with
    /// `mutant`; nothing when every byte read matched and every invariant
    /// check passed. `info` receives the context's counters and the time checks took.
    std::optional<failure> run(std::span<const op> program, std::optional<std::uint32_t> mutant,
                               run_info* info = nullptr) {
        std::unique_ptr<usm::context> ctx;
        try {
            ctx = open();
        } catch (const std::exception& e) {
            return failure{0, std::string("cannot open the context: ") + e.what()};
        }
        program_run r(*this, *ctx, mutant);
        std::optional<failure> f = r.run(program);
        if (info != nullptr) *info = {ctx->stats(), r.check_seconds()};
        return f;
    }

private:
    std::unique_ptr<usm::context> open() const {
        usm::context_options o;
        o.backend = m_param.backend;
        o.device = std::string(m_param.backend) + ":0," + m_param.backend + ":0";
        o.fault = m_param.path;
        if (m_param.budget) {
            o.block_size = model_block;
            o.device_budget = model_budget;
        }
        return std::make_unique<usm::context>(o);
    }

    /// One program on one context.
    class program_run {
    public:
        program_run(usm_runner& owner, usm::context& ctx, std::optional<std::uint32_t> mutant)
            : m_owner(owner), m_ctx(ctx), m_model(mutant) {}

        ~program_run() {
            // Whatever happened, no kernel may outlive the run: the context
            // is destroyed next (it would wait too, but quietly).
            for (usm::event& e : m_pending) {
                try {
                    e.wait();
                } catch (...) {
                }
            }
            if (m_memfd >= 0) ::close(m_memfd);
        }

        std::optional<failure> run(std::span<const op> program) {
            m_memfd = ::memfd_create("usm_model_test", MFD_CLOEXEC);
            if (m_memfd < 0) return failure{0, std::string("memfd_create: ") + std::strerror(errno)};

            for (std::size_t i = 0; i < program.size(); ++i) {
                const op& o = program[i];
                if (!m_model.applicable(o)) continue;  // its allocation was dropped by the shrinker
                try {
                    if (std::optional<std::string> wrong = execute(o)) return failure{i, *wrong};
                    if ((i + 1) % m_owner.m_check_every == 0) check_invariants();
                } catch (const std::exception& e) {
                    return failure{i, e.what()};
                }
            }

            // The end-of-program check: every live byte, after every kernel.
            try {
                wait_all();
                for (std::uint32_t id : m_model.live_ids()) {
                    const std::span<const std::uint8_t> want = m_model.bytes(id);
                    const std::uint8_t* base = m_bases.at(id);
                    const std::vector<std::uint8_t> got(base, base + want.size());
                    if (auto wrong = compare(want, got, id, 0, "end-of-program read"))
                        return failure{program.size(), *wrong};
                }
                check_invariants();
            } catch (const std::exception& e) {
                return failure{program.size(), e.what()};
            }
            return std::nullopt;
        }

        /// Seconds spent in check_invariants (reading /proc/self/maps).
        double check_seconds() const noexcept { return m_check_seconds; }

    private:
        void check_invariants() {
            const auto start = clock_type::now();
            m_ctx.impl().check_invariants();
            m_check_seconds += std::chrono::duration<double>(clock_type::now() - start).count();
        }

        /// Runs `o` on usm and on the model; a message when a read differs.
        std::optional<std::string> execute(const op& o) {
            switch (o.kind) {
                case op_kind::alloc: {
                    const usm::placement at = o.placement == where::shared ? usm::placement::shared()
                                              : o.placement == where::host
                                                  ? usm::placement::host()
                                                  : usm::placement::device(m_ctx.devices()[o.device]);
                    const std::size_t pages =
                        o.placement == where::device ? (o.length + page_bytes - 1) / page_bytes : 0;
                    if (within_budget(pages, [&] {
                            m_bases[o.id] = static_cast<std::uint8_t*>(m_ctx.alloc_bytes(o.length, at));
                        }))
                        m_model.apply(o);
                    return std::nullopt;
                }
                case op_kind::free:
                    m_ctx.free_bytes(m_bases.at(o.id));
                    m_bases.erase(o.id);
                    m_model.apply(o);
                    return std::nullopt;
                case op_kind::host_read:
                case op_kind::syscall_read: {
                    std::vector<std::uint8_t> got(o.length);
                    on_thread(o, [&] {
                        if (o.kind == op_kind::host_read)
                            host_read(o, got);
                        else
                            syscall_read(o, got);
                    });
                    return compare(m_model.expected(o), got, o.id, o.offset, to_string(o.kind));
                }
                case op_kind::host_write:
                    on_thread(o, [&] { host_write(o); });
                    m_model.apply(o);
                    return std::nullopt;
                case op_kind::host_update:
                    on_thread(o, [&] {
                        std::uint8_t* p = m_bases.at(o.id) + o.offset;
                        for (std::size_t i = 0; i < o.length; ++i) p[i] = static_cast<std::uint8_t>(p[i] * 3 + o.value);
                    });
                    m_model.apply(o);
                    return std::nullopt;
                case op_kind::syscall_write:
                    on_thread(o, [&] { syscall_write(o); });
                    m_model.apply(o);
                    return std::nullopt;
                case op_kind::kernel_add:
                case op_kind::kernel_fill:
                case op_kind::kernel_copy:
                    if (launch(o)) m_model.apply(o);
                    return std::nullopt;
                case op_kind::advise:
                    advise(o);  // changes where copies stay, never the data
                    return std::nullopt;
                case op_kind::prefetch:
                    prefetch(o);  // moves data, never changes it: the model is unchanged
                    return std::nullopt;
                case op_kind::wait_all:
                    wait_all();
                    return std::nullopt;
            }
            return "unknown op";
        }

        void on_thread(const op& o, const std::function<void()>& job) {
            if (o.thread < m_owner.m_workers.size())
                m_owner.m_workers.run(o.thread, job);
            else
                job();
        }

        void host_read(const op& o, std::vector<std::uint8_t>& got) const {
            const std::uint8_t* p = m_bases.at(o.id) + o.offset;
            if (!o.reverse) {
                std::memcpy(got.data(), p, o.length);
                return;
            }
            const volatile std::uint8_t* v = p;
            for (std::size_t i = o.length; i-- > 0;) got[i] = v[i];
        }

        void host_write(const op& o) const {
            const std::vector<std::uint8_t> data = host_data(o);
            std::uint8_t* p = m_bases.at(o.id) + o.offset;
            if (!o.reverse) {
                std::memcpy(p, data.data(), o.length);
                return;
            }
            volatile std::uint8_t* v = p;
            for (std::size_t i = o.length; i-- > 0;) v[i] = data[i];
        }

        /// On the signal path the kernel answers EFAULT for pages the host
        /// may not touch, so host_access comes first; on userfaultfd it is
        /// skipped when `o.reverse` says so, and the kernel's copy faults in.
        bool needs_host_access(const op& o) const {
            return m_ctx.fault_handling() != usm::fault_path::userfaultfd || !o.reverse;
        }

        void syscall_read(const op& o, std::vector<std::uint8_t>& got) const {
            const std::uint8_t* p = m_bases.at(o.id) + o.offset;
            if (needs_host_access(o)) m_ctx.host_access_bytes(p, o.length, usm::access::read);
            transfer(
                "pwrite(2) from usm memory",
                [&](std::size_t done) {
                    return ::pwrite(m_memfd, p + done, o.length - done, static_cast<off_t>(done));
                },
                o.length);
            transfer(
                "pread(2) from the memfd",
                [&](std::size_t done) {
                    return ::pread(m_memfd, got.data() + done, o.length - done, static_cast<off_t>(done));
                },
                o.length);
        }

        void syscall_write(const op& o) const {
            const std::vector<std::uint8_t> data = host_data(o);
            std::uint8_t* p = m_bases.at(o.id) + o.offset;
            transfer(
                "pwrite(2) to the memfd",
                [&](std::size_t done) {
                    return ::pwrite(m_memfd, data.data() + done, o.length - done, static_cast<off_t>(done));
                },
                o.length);
            if (needs_host_access(o))
                m_ctx.host_access_bytes(p, o.length, o.read_write ? usm::access::read_write : usm::access::write);
            transfer(
                "pread(2) into usm memory",
                [&](std::size_t done) { return ::pread(m_memfd, p + done, o.length - done, static_cast<off_t>(done)); },
                o.length);
        }

        /// Calls `step(done)` until `length` bytes moved; throws on an error
        /// or a call that moves nothing.
        static void transfer(const char* what, const std::function<ssize_t(std::size_t)>& step, std::size_t length) {
            for (std::size_t done = 0; done < length;) {
                const ssize_t n = step(done);
                if (n <= 0)
                    throw std::runtime_error(std::string(what) + " stopped after " + std::to_string(done) + " of " +
                                             std::to_string(length) +
                                             " bytes: " + (n < 0 ? std::strerror(errno) : "returned 0"));
                done += static_cast<std::size_t>(n);
            }
        }

        /// The kernel `k` on device `d`, loaded on first use: PoCL takes tens
        /// of milliseconds per build, and the shrinker's short programs need
        /// few kernels.
        const usm::kernel& kernel(std::size_t d, kernel_kind k) {
            usm::kernel& slot = m_kernels[d][k];
            if (!slot) {
                usm::device& dev = m_ctx.devices()[d];
                slot = k == add_kernel    ? usm_test::load(dev, USM_TEST_KERNEL(test_model_add))
                       : k == fill_kernel ? usm_test::load(dev, USM_TEST_KERNEL(test_model_fill))
                       : k == copy_kernel ? usm_test::load(dev, USM_TEST_KERNEL(test_model_copy))
                                          : usm_test::load(dev, USM_TEST_KERNEL(test_model_copy_any));
            }
            return slot;
        }

        /// Pages of device memory the op's launch needs: the pages it
        /// declares, overlaps counted once, except those of an allocation the
        /// device accesses in place (every page of it in the launch advised
        /// accessed_by that device).
        std::size_t declared_pages(const op& o) const {
            auto pages = [](std::size_t first_word, std::size_t words) {
                const std::size_t first = first_word * word_bytes / page_bytes;
                return std::pair{first, (first_word * word_bytes + words * word_bytes + page_bytes - 1) / page_bytes};
            };
            if (o.length == 0) return 0;
            usm::device& dev = m_ctx.devices()[o.device];
            auto in_place = [&](std::uint32_t id, std::size_t lo, std::size_t hi) {
                if (!dev.properties().host_memory_in_place) return false;
                const std::size_t size = m_model.bytes(id).size();
                const usm::range_info info = m_ctx.query(usm::ptr<std::uint8_t>(m_bases.at(id) + lo * page_bytes),
                                                         std::min(hi * page_bytes, size) - lo * page_bytes);
                return std::ranges::find(info.accessed_by, dev.index()) != info.accessed_by.end();
            };
            auto [lo, hi] = pages(o.offset, o.length);
            if (o.kind != op_kind::kernel_copy) return in_place(o.id, lo, hi) ? 0 : hi - lo;
            auto [src_lo, src_hi] = pages(o.src_offset, o.length);
            if (o.any) {
                // A device fault on the source brings its whole block.
                const std::size_t block = model_block / page_bytes;
                const std::size_t src_pages = (m_model.bytes(o.src).size() + page_bytes - 1) / page_bytes;
                src_lo = src_lo / block * block;
                src_hi = std::min((src_hi + block - 1) / block * block, src_pages);
            }
            if (o.src != o.id)
                return (in_place(o.id, lo, hi) ? 0 : hi - lo) + (in_place(o.src, src_lo, src_hi) ? 0 : src_hi - src_lo);
            if (in_place(o.id, lo, hi) && in_place(o.id, src_lo, src_hi)) return 0;
            const std::size_t overlap =
                std::min(hi, src_hi) > std::max(lo, src_lo) ? std::min(hi, src_hi) - std::max(lo, src_lo) : 0;
            return (hi - lo) + (src_hi - src_lo) - overlap;
        }

        /// Runs `f`, which needs `pages` on a device. Under a budget they do
        /// not fit, it must throw out_of_memory and change nothing: false.
        template <class F>
        bool within_budget(std::size_t pages, F&& f) {
            if (!m_owner.m_param.budget || pages * page_bytes <= model_budget) {
                f();
                return true;
            }
            try {
                f();
            } catch (const usm::error& e) {
                if (e.kind() == usm::errc::out_of_memory) return false;
                throw;
            }
            throw std::runtime_error("an op needing " + std::to_string(pages) + " pages ran within a budget of " +
                                     std::to_string(model_budget / page_bytes));
        }

        bool launch(const op& o) {
            // A copy through the page table that might not fit runs as a
            // declared one: a replay that fails for room would leave the
            // faulted run's partial results (docs/device-faults.md).
            if (o.any && m_owner.m_param.budget && declared_pages(o) * page_bytes > model_budget) {
                op declared = o;
                declared.any = false;
                return within_budget(declared_pages(declared), [&] { launch_now(declared); });
            }
            return within_budget(declared_pages(o), [&] { launch_now(o); });
        }

        void launch_now(const op& o) {
            usm::device& dev = m_ctx.devices()[o.device];
            auto* x = reinterpret_cast<std::uint32_t*>(m_bases.at(o.id)) + o.offset;
            const auto n = static_cast<std::uint32_t>(o.length);
            const usm::grid g{std::max<std::size_t>(1, (o.length + 63) / 64)};
            const usm::group l{64};
            usm::event e;
            switch (o.kind) {
                case op_kind::kernel_add:
                    e = dev.launch(kernel(o.device, add_kernel), g, l, usm::read_write(x, o.length), n, o.value);
                    break;
                case op_kind::kernel_fill:
                    e = dev.launch(kernel(o.device, fill_kernel), g, l, usm::write(x, o.length), n, o.value,
                                   std::uint32_t{o.stride});
                    break;
                default: {
                    auto* from = reinterpret_cast<std::uint32_t*>(m_bases.at(o.src)) + o.src_offset;
                    const usm::declared_access to =
                        o.read_write ? usm::read_write(x, o.length) : usm::write(x, o.length);
                    if (o.any)
                        e = dev.launch(kernel(o.device, copy_any_kernel), g, l, usm::replayable, usm::any, to,
                                       usm::ptr<std::uint32_t>(from).address(), n);
                    else
                        e = dev.launch(kernel(o.device, copy_kernel), g, l, usm::read(from, o.length), to, n);
                    break;
                }
            }
            if (o.wait)
                e.wait();
            else
                m_pending.push_back(e);
        }

        /// ctx.prefetch of the op's byte range: to the host when `reverse`,
        /// else to device `device`, waited for at once when `wait`.
        void prefetch(const op& o) {
            const usm::ptr<std::uint8_t> p(m_bases.at(o.id) + o.offset);
            if (o.reverse) {
                m_ctx.prefetch(p, o.length, usm::host);
                return;
            }
            const std::size_t first = o.offset / page_bytes;
            const std::size_t pages = o.length == 0 ? 0 : (o.offset + o.length + page_bytes - 1) / page_bytes - first;
            usm::event e;
            within_budget(pages, [&] { e = m_ctx.prefetch(p, o.length, m_ctx.devices()[o.device]); });
            if (o.wait)
                e.wait();
            else
                m_pending.push_back(e);
        }

        void advise(const op& o) {
            const usm::ptr<std::uint8_t> p(m_bases.at(o.id) + o.offset);
            switch (advice_of(o)) {
                case model_advice::read_mostly:
                    m_ctx.advise(p, o.length, usm::advice::read_mostly);
                    break;
                case model_advice::unset_read_mostly:
                    m_ctx.advise(p, o.length, usm::advice::unset_read_mostly);
                    break;
                case model_advice::prefer_host:
                    m_ctx.advise(p, o.length, usm::advice::preferred_location, usm::host);
                    break;
                case model_advice::prefer_device:
                    m_ctx.advise(p, o.length, usm::advice::preferred_location, m_ctx.devices()[o.device]);
                    break;
                case model_advice::unset_preferred:
                    m_ctx.advise(p, o.length, usm::advice::unset_preferred_location);
                    break;
                case model_advice::accessed_by:
                    m_ctx.advise(p, o.length, usm::advice::accessed_by, m_ctx.devices()[o.device]);
                    break;
                case model_advice::unset_accessed_by:
                    m_ctx.advise(p, o.length, usm::advice::unset_accessed_by, m_ctx.devices()[o.device]);
                    break;
            }
        }

        void wait_all() {
            std::vector<usm::event> pending;
            pending.swap(m_pending);
            for (usm::event& e : pending) e.wait();
        }

        usm_runner& m_owner;
        usm::context& m_ctx;
        reference_model m_model;
        std::map<std::uint32_t, std::uint8_t*> m_bases;
        std::vector<usm::event> m_pending;
        usm::kernel m_kernels[device_count][kernel_kinds];
        int m_memfd = -1;
        double m_check_seconds = 0;
    };

    model_param m_param;
    host_workers m_workers;
    std::size_t m_check_every;
    bool m_no_device = false;
};

/* --- the suite ---------------------------------------------------------- */

class model_test : public testing::TestWithParam<model_param> {
protected:
    void SetUp() override {
        // The parameter decides the fault path, whatever USM_FAULT says.
        if (const char* f = std::getenv("USM_FAULT")) m_saved_fault = f;
        ::unsetenv("USM_FAULT");
        m_runner = std::make_unique<usm_runner>(GetParam(), env_number("USM_MODEL_CHECK_EVERY").value_or(1));
        if (std::optional<std::string> why = m_runner->probe()) {
            // Like multi_device_test: a machine without the devices (or with
            // USM_DEVICE asking for others) skips, except in CI.
            if (m_runner->no_device() && !usm_test::in_ci()) GTEST_SKIP() << *why;
            FAIL() << "cannot open " << param_name(GetParam()) << ": " << *why;
        }
    }
    void TearDown() override {
        m_runner.reset();
        if (!m_saved_fault.empty()) ::setenv("USM_FAULT", m_saved_fault.c_str(), 1);
    }

    /// The command line that runs this test again; `environment` goes first.
    static std::string rerun(const std::string& environment = {}) {
        const testing::TestInfo* t = testing::UnitTest::GetInstance()->current_test_info();
        return environment + "./tests/model_test --gtest_filter='" + t->test_suite_name() + "." + t->name() + "'";
    }
    /// The same for a random program made from `seed` and `g`.
    static std::string rerun(std::uint64_t seed, const generator_options& g) {
        std::string environment = "USM_MODEL_SEED=" + hex(seed) + " USM_MODEL_OPS=" + std::to_string(g.ops) + " ";
        if (g.max_live != default_max_live) environment += "USM_MODEL_MAX_LIVE=" + std::to_string(g.max_live) + " ";
        return rerun(environment);
    }

    /// Shrinks a failure of `program` and returns the report.
    std::string shrink_and_report(std::uint64_t seed, const std::string& again, std::span<const op> program,
                                  const failure& first, std::optional<std::uint32_t> mutant, shrink_limits limits) {
        const runner fresh = [&](std::span<const op> ops) { return m_runner->run(ops, mutant); };
        const shrunk s = shrink(program, first, fresh, limits);
        m_last_shrunk = s;
        return report(seed, again, program, first, s);
    }

    std::unique_ptr<usm_runner> m_runner;
    std::optional<shrunk> m_last_shrunk;

private:
    std::string m_saved_fault;
};

/// Random programs of USM_MODEL_OPS ops (10,000 by default), starting at
/// USM_MODEL_SEED (the parameter's seed by default), one after another with
/// the next seeds until USM_MODEL_SECONDS have passed (one program by default).
TEST_P(model_test, random_programs_match_the_reference_model) {
    const std::uint64_t first_seed = env_number("USM_MODEL_SEED").value_or(GetParam().seed);
    const std::size_t ops = env_number("USM_MODEL_OPS").value_or(10'000);
    const std::uint64_t seconds = env_number("USM_MODEL_SECONDS").value_or(0);
    generator_options g;
    g.ops = ops;
    g.max_live = env_number("USM_MODEL_MAX_LIVE").value_or(default_max_live);
    if (GetParam().budget) g.max_pages = model_budget_max_pages;
    shrink_limits limits;
    limits.max_time = std::chrono::seconds(env_number("USM_MODEL_SHRINK_SECONDS").value_or(180));
    limits.max_runs = env_number("USM_MODEL_SHRINK_RUNS").value_or(limits.max_runs);

    const auto start = clock_type::now();
    std::size_t total_ops = 0;
    for (std::uint64_t seed = first_seed;; ++seed) {
        const std::vector<op> program = generate(seed, g);
        const auto t0 = clock_type::now();
        usm_runner::run_info info;
        const std::optional<failure> f = m_runner->run(program, std::nullopt, &info);
        const double took = std::chrono::duration<double>(clock_type::now() - t0).count();
        if (f) FAIL() << shrink_and_report(seed, rerun(seed, g), program, *f, std::nullopt, limits);
        total_ops += program.size();
        const usm::stats& st = info.stats;
        std::printf(
            "[ model    ] %s seed %s: %zu ops in %.1f s (%.1f s of them in invariant checks)\n"
            "             %s\n"
            "             usm: %llu host read faults, %llu host write faults, %llu launches, %llu kernel waits, "
            "%llu pages to devices, %llu pages to host, %llu blocks evicted, %llu pages written back, %llu pages "
            "accessed in place, %llu device faults, %llu replays\n",
            param_name(GetParam()).c_str(), hex(seed).c_str(), program.size(), took, info.check_seconds,
            mix(program).c_str(), static_cast<unsigned long long>(st.host_read_faults),
            static_cast<unsigned long long>(st.host_write_faults), static_cast<unsigned long long>(st.launches),
            static_cast<unsigned long long>(st.kernel_waits), static_cast<unsigned long long>(st.pages_to_device),
            static_cast<unsigned long long>(st.pages_to_host), static_cast<unsigned long long>(st.blocks_evicted),
            static_cast<unsigned long long>(st.pages_written_back), static_cast<unsigned long long>(st.pages_in_place),
            static_cast<unsigned long long>(st.device_faults), static_cast<unsigned long long>(st.replays));
        std::fflush(stdout);
        if (program.size() >= 1000) {
            // A program that never faulted or migrated would check little.
            EXPECT_GT(st.host_read_faults, 0u);
            EXPECT_GT(st.host_write_faults, 0u);
            EXPECT_GT(st.pages_to_device, 0u);
            EXPECT_GT(st.pages_to_host, 0u);
            EXPECT_GT(st.device_faults, 0u) << "copies through the page table never faulted";
            EXPECT_GT(st.replays, 0u);
            if (GetParam().budget) {
                EXPECT_GT(st.blocks_evicted, 0u);
                EXPECT_GT(st.pages_written_back, 0u);
            }
            // lavapipe and PoCL both take accessed_by pages in place.
            if (usm_test::in_ci()) {
                EXPECT_GT(st.pages_in_place, 0u);
            }
        }
        if (std::chrono::duration<double>(clock_type::now() - start).count() >= static_cast<double>(seconds)) break;
    }
    if (seconds > 0) std::printf("[ model    ] %zu ops in all\n", total_ops);
}

/// The test can fail: a reference model that gets one op wrong on purpose
/// (its effect on memory has one bit flipped) must disagree with usm, and the
/// shrinker must cut the program down to the op that did it.
TEST_P(model_test, a_mutant_model_is_caught_and_shrunk) {
    generator_options g;
    g.ops = 200;
    g.max_live = default_max_live;
    if (GetParam().budget) g.max_pages = model_budget_max_pages;
    const std::uint64_t seed = GetParam().seed ^ 0x6d7574616e74ull;  // "mutant"
    const std::vector<op> program = generate(seed, g);

    // The mutant: the first write op past the middle whose flipped bit the
    // plain model itself can observe later (a read, or the end-of-program
    // check) - one overwritten or freed before anything reads it is benign.
    auto observable = [&](std::uint32_t mutant) {
        reference_model good, bad(mutant);
        for (const op& o : program) {
            if (!good.applicable(o)) continue;
            if ((o.kind == op_kind::host_read || o.kind == op_kind::syscall_read) &&
                !std::ranges::equal(good.expected(o), bad.expected(o)))
                return true;
            good.apply(o);
            bad.apply(o);
        }
        for (std::uint32_t id : good.live_ids())
            if (!std::ranges::equal(good.bytes(id), bad.bytes(id))) return true;
        return false;
    };
    std::optional<std::uint32_t> mutant;
    for (const op& o : program) {
        const bool writes = o.kind == op_kind::host_write || o.kind == op_kind::kernel_add ||
                            o.kind == op_kind::kernel_copy || o.kind == op_kind::kernel_fill;
        if (writes && o.index >= program.size() / 2 && o.length > 0 && observable(o.index)) {
            mutant = o.index;
            break;
        }
    }
    ASSERT_TRUE(mutant) << "no observable write op in the second half of the program; pick another seed";

    const std::optional<failure> f = m_runner->run(program, mutant);
    ASSERT_TRUE(f) << "usm agreed with a model that is wrong at op #" << *mutant << ": the comparison checks nothing";

    shrink_limits limits;
    limits.max_runs = 80;
    limits.max_time = std::chrono::seconds(60);
    const std::string text = shrink_and_report(seed, rerun(), program, *f, mutant, limits);
    std::printf("[ mutant   ] the model is wrong at op #%u; usm disagreed at op #%zu. The report it makes:\n%s",
                *mutant, f->position, text.c_str());
    std::fflush(stdout);
    ASSERT_TRUE(m_last_shrunk);
    const shrunk& s = *m_last_shrunk;
    EXPECT_TRUE(s.reproduced);
    // The shortest failing prefix ends exactly at the corrupting op: every
    // shorter prefix passes, and this one fails at the end-of-program check.
    EXPECT_EQ(s.prefix_length, *mutant + 1u);
    // Dropping ops leaves the mutant and the alloc of what it writes.
    EXPECT_TRUE(std::ranges::any_of(s.program, [&](const op& o) { return o.index == *mutant; }));
    EXPECT_LE(s.program.size(), 4u) << describe(s.program);
}

INSTANTIATE_TEST_SUITE_P(paths, model_test,
                         testing::Values(model_param{usm::fault_path::signal, "vulkan", 0x5eed0000000001ull},
                                         model_param{usm::fault_path::userfaultfd, "vulkan", 0x5eed0000000002ull},
                                         model_param{usm::fault_path::signal, "opencl", 0x5eed0000000003ull},
                                         model_param{usm::fault_path::userfaultfd, "opencl", 0x5eed0000000004ull},
                                         model_param{usm::fault_path::signal, "vulkan", 0x5eed0000000005ull, true},
                                         model_param{usm::fault_path::userfaultfd, "opencl", 0x5eed0000000006ull,
                                                     true}),
                         model_param_name);

}  // namespace
