// bench/bench.hpp - what usm-bench's parts share: options, timing, the
// interface its hand-written baselines implement, and the result records that
// the table and the JSON are printed from.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "usm/usm.hpp"

namespace bench {

/* --- options ------------------------------------------------------------ */

struct options {
    int repetitions = 5;          ///< timed repetitions per variant (medians); 5 or more for figures
    bool quick = false;           ///< smaller sizes, for CI
    std::string filter;           ///< run only workloads whose "name/backend" contains this
    std::string backend = "all";  ///< vulkan, opencl or all
    std::string json_path;        ///< where to write the JSON results (empty: none)
    bool mapped = false;          ///< add the Vulkan "vk-mapped" (zero-copy) program baseline
};

/// A result that does not match its reference: the bench reports it and
/// exits non-zero.
struct mismatch : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// printf into a std::string (for labels and messages).
template <class... A>
std::string strprintf(const char* f, A... a) {
    char buf[512];
    std::snprintf(buf, sizeof buf, f, a...);
    return buf;
}

/* --- timing ------------------------------------------------------------- */

using clock = std::chrono::steady_clock;

inline double seconds_since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

double median(std::vector<double> v);

/// Named sub-intervals of one timed run (for example the kernel phase and
/// the host-check phase of saxpy), summed over the run.
class phases {
public:
    void add(const std::string& name, double seconds);
    const std::vector<std::pair<std::string, double>>& list() const noexcept { return m_list; }

    /// Process CPU time spent in the timed part of the run (see stopwatch).
    std::optional<double> cpu;

private:
    std::vector<std::pair<std::string, double>> m_list;
};

/// CPU time of the whole process so far: every thread (the program's, usm's
/// and the driver's), user and system.
double process_cpu_seconds();

/// Times the part of a run that counts: stop() returns the wall-clock
/// seconds since construction and adds the process CPU time spent meanwhile
/// to the run's phases (a variant that burns CPU while waiting shows there).
class stopwatch {
public:
    explicit stopwatch(phases& p) : m_phases(p), m_t0(clock::now()), m_cpu0(process_cpu_seconds()) {}
    double stop() {
        const double wall = seconds_since(m_t0);
        m_phases.cpu = m_phases.cpu.value_or(0.0) + process_cpu_seconds() - m_cpu0;
        return wall;
    }

private:
    phases& m_phases;
    clock::time_point m_t0;
    double m_cpu0;
};

/// Accumulates the time between construction and destruction into a phase.
class phase_timer {
public:
    phase_timer(phases& p, std::string name) : m_phases(p), m_name(std::move(name)), m_t0(clock::now()) {}
    ~phase_timer() { m_phases.add(m_name, seconds_since(m_t0)); }
    phase_timer(const phase_timer&) = delete;
    phase_timer& operator=(const phase_timer&) = delete;

private:
    phases& m_phases;
    std::string m_name;
    clock::time_point m_t0;
};

/// One way of doing a workload: usm, or one baseline. `run` does one
/// repetition, verifies it (throws mismatch) and returns the seconds that
/// count; it may record phases. `divide` turns a run's time into the unit
/// reported (for per-read or per-launch figures).
struct variant {
    std::string name;
    std::function<double(phases&)> run;
    double divide = 1.0;
};

/// What measuring a set of variants gave: per variant every repetition's
/// time (already divided) and the median of each phase.
struct measured {
    std::string name;
    std::vector<double> samples;
    std::vector<double> cpu_samples;  ///< process CPU time (all threads, user + system) per run, divided likewise
    std::vector<std::pair<std::string, double>> phase_medians;
    double median_seconds() const { return median(samples); }
    double median_cpu() const { return median(cpu_samples); }
};

/// Runs every variant `reps` times, interleaved (rep 1 of each, then rep 2 of
/// each, ...), so that a change in the machine's load hits all of them alike,
/// after `warmup` untimed rounds (first-touch costs of staging and the like).
std::vector<measured> measure(int reps, std::vector<variant>& variants, int warmup = 0);

/* --- results ------------------------------------------------------------ */

struct baseline_figure {
    std::string name;
    double seconds = 0;
    double ratio = 0;         ///< usm / baseline: the ratio of the medians
    double paired_ratio = 0;  ///< the median of per-repetition ratios (repetition i of both ran back to back)
    double cpu_seconds = 0;   ///< median process CPU time of a run (every thread: the app's, the driver's)
    std::vector<double> samples;
    std::vector<std::pair<std::string, double>> phases;
};

/// A target from issue 4: usm's figure divided by `baseline` must be at most
/// `limit` (for page metadata: the fraction itself).
struct target {
    std::string text;
    std::string baseline;
    double limit = 0;
    double value = 0;
    bool met = false;
};

struct result {
    std::string name;     ///< the workload
    std::string backend;  ///< vulkan, opencl, or host
    std::string unit;     ///< what usm_seconds and the baselines' seconds measure
    std::string params;   ///< sizes, as run
    std::string note;     ///< anything the reader must know (a reduced size, ...)
    bool timed = true;    ///< false: usm_seconds holds a value in `unit`, not a time
    int repetitions = 0;  ///< timed repetitions behind each median
    double usm_seconds = 0;
    double usm_cpu_seconds = 0;
    std::vector<double> usm_samples;
    std::vector<std::pair<std::string, double>> usm_phases;
    std::vector<baseline_figure> baselines;
    std::vector<target> targets;
    std::optional<usm::stats> stats;                    ///< usm's counters over its last repetition
    std::vector<std::pair<std::string, double>> extra;  ///< other figures (metadata bytes, ...)
    bool verified = true;
    std::string failure;
};

/// Builds a result from measured variants: the one named "usm" and the rest
/// as baselines, with ratios.
result make_result(std::string name, std::string backend, std::string unit, std::string params,
                   const std::vector<measured>& m);

/// Adds the target "usm / `baseline` <= limit" (a baseline of that name must
/// be in `r`).
void add_target(result& r, const std::string& text, const std::string& baseline, double limit);

/* --- baselines ---------------------------------------------------------- */

/// A kernel in both of its forms.
struct kernel_source {
    std::string_view entry;                ///< OpenCL entry point
    std::span<const std::uint32_t> spirv;  ///< Vulkan (entry "main")
    std::string_view opencl;
};

using buffer = std::size_t;

/// A kernel argument for a baseline: a buffer (its device address on Vulkan,
/// the cl_mem or SVM pointer on OpenCL) or a value's bytes.
struct arg {
    bool is_buffer = false;
    buffer b = 0;
    std::size_t offset = 0;
    unsigned char bytes[8] = {};
    std::size_t size = 0;
    std::size_t align = 1;
};

inline arg mem(buffer b) {
    arg a;
    a.is_buffer = true;
    a.b = b;
    return a;
}

template <class T>
arg val(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
    arg a;
    std::memcpy(a.bytes, &v, sizeof(T));
    a.size = sizeof(T);
    a.align = alignof(T);
    return a;
}

/// What a hand-written program does with a driver, without usm: device
/// buffers, and host memory that mirrors each one. Three implementations:
///
///   explicit copy (Vulkan, OpenCL)  host memory is separate (Vulkan: a
///                                   host-visible staging buffer per device
///                                   buffer; OpenCL: a fresh anonymous mapping);
///                                   end_host_write copies it in,
///                                   request_read copies out.
///   mapped (Vulkan)                 host() is the device buffer's own mapping
///                                   (lavapipe's device memory is host
///                                   visible); nothing is copied.
///   SVM (OpenCL)                    coarse-grained SVM; the host brackets its
///                                   accesses with clEnqueueSVMMap / Unmap.
///
/// Work is recorded (Vulkan: one command buffer, with a barrier between
/// commands) or enqueued (OpenCL: one in-order queue) until sync(), which
/// submits and waits. Not thread-safe. Errors throw std::runtime_error.
class baseline_device {
public:
    virtual ~baseline_device() = default;

    /// Prepares a kernel for one work-group size (the Vulkan pipeline, the
    /// OpenCL program), once, outside any timing.
    virtual std::size_t load(const kernel_source& k, usm::group g) = 0;

    /// A device buffer of `bytes` and its host memory. Contents undefined.
    virtual buffer alloc(std::size_t bytes) = 0;
    /// Frees every buffer (the end of a repetition); waits for the device.
    virtual void release_all() = 0;
    /// The host memory of `b`.
    virtual std::byte* host(buffer b) = 0;

    /// The host is about to write bytes [off, off + n) of host(b).
    virtual void begin_host_write(buffer b, std::size_t off, std::size_t n) = 0;
    /// The host has written them: the device sees them in later commands.
    virtual void end_host_write(buffer b, std::size_t off, std::size_t n) = 0;
    /// The device buffer is zero from here on (a fill on the device).
    virtual void zero(buffer b) = 0;
    /// Runs `k` over `g` groups of `l` items (after earlier commands).
    virtual void launch(std::size_t k, usm::grid g, usm::group l, std::initializer_list<arg> args) = 0;
    /// After the next sync(), host(b)[off, off + n) holds the device's bytes.
    virtual void request_read(buffer b, std::size_t off, std::size_t n) = 0;
    /// Submits what was recorded and waits for it.
    virtual void sync() = 0;
    /// The host is done reading what request_read brought.
    virtual void end_host_read(buffer b, std::size_t off, std::size_t n) = 0;

    /// The largest buffer the device allows.
    virtual std::size_t max_buffer() const = 0;
};

/// Vulkan on the physical device whose name contains `device_name`.
/// `mapped`: device buffers are host-visible and used in place (throws when
/// the device has no memory type that is both).
std::unique_ptr<baseline_device> make_vulkan_baseline(const std::string& device_name, bool mapped);

enum class opencl_mode { explicit_copy, svm };
/// OpenCL on the device whose name equals `device_name`.
std::unique_ptr<baseline_device> make_opencl_baseline(const std::string& device_name, opencl_mode mode);

/* --- workloads ---------------------------------------------------------- */

/// Everything a workload needs for one backend: usm's context and device,
/// and the baselines made for the same device.
struct backend_setup {
    std::string backend;  ///< "vulkan" or "opencl"
    usm::context* ctx = nullptr;
    usm::device* dev = nullptr;
    /// Whole-program baselines, by name: "explicit-copy" first, then
    /// "pocl-svm" (OpenCL) or, with --mapped, "vk-mapped" (Vulkan).
    std::vector<std::pair<std::string, baseline_device*>> programs;
    baseline_device* explicit_copy = nullptr;  ///< for the raw operations
};

/// Loads a kernel on a usm device, in the form its backend takes.
usm::kernel load(usm::device& d, const kernel_source& k);

result run_saxpy(const options& o, backend_setup& s);
result run_heat2d(const options& o, backend_setup& s);
result run_cg(const options& o, backend_setup& s);
result run_random_read(const options& o, backend_setup& s);
result run_sweep(const options& o, backend_setup& s);
std::vector<result> run_resident_launch(const options& o, backend_setup& s);
result run_metadata(const options& o, backend_setup& s);
result run_oversubscribed(const options& o, backend_setup& s);

}  // namespace bench
