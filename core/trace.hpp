// core/trace.hpp - what usm did, as Chrome trace-event JSON (USM_TRACE).
//
// A context with a trace path records host faults, migrations (bytes,
// direction, device), kernels, evictions and waits as complete ("X") events,
// one track per host thread and one per device queue, and writes them when
// the context is destroyed. The file opens in Perfetto (ui.perfetto.dev) and
// chrome://tracing. Times are microseconds since the context was made.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace usm::detail {

class tracer {
public:
    /// Records nothing when `path` is empty.
    explicit tracer(std::string path);
    /// Writes the file; failures are logged (a trace never fails the program).
    ~tracer();
    tracer(const tracer&) = delete;
    tracer& operator=(const tracer&) = delete;

    bool on() const noexcept { return !m_path.empty(); }
    /// Microseconds since the tracer was made.
    double now() const noexcept {
        return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - m_start).count();
    }
    /// The calling thread's track.
    static std::uint64_t this_thread() noexcept;
    /// A device queue's track: device `index`, `queue` 0 compute, 1 transfer.
    static std::uint64_t queue_track(std::size_t index, unsigned queue) noexcept {
        return (std::uint64_t{1} << 32) + index * 2 + queue;
    }

    /// Names a track (shown instead of its number).
    void name_track(std::uint64_t track, std::string name);
    /// One event from `begin` to `end` on `track`; `args` is a JSON object's
    /// members ("\"bytes\": 4096, ...") or empty. Under the tracer's own lock,
    /// a leaf: callable with the context lock held.
    void complete(std::string_view name, std::string_view category, std::uint64_t track, double begin, double end,
                  std::string args = {});
    /// Page `page` of allocation `id` is now valid at the locations in
    /// `valid` (bit 0 the host, bit i + 1 device i). Pages that follow one
    /// another within a few microseconds on one thread with the same mask
    /// become one "residency" event (docs/tracing.md), so a migration of a
    /// run of pages is one event.
    void residency(std::uint64_t id, std::size_t page, std::uint16_t valid) noexcept;

private:
    struct event {
        std::string name;
        std::string category;
        std::uint64_t track;
        double begin, end;
        std::string args;
    };

    struct run {
        std::uint64_t id = 0;
        std::size_t first = 0, pages = 0;
        std::uint16_t valid = 0;
        std::uint64_t track = 0;
        double begin = 0, last = 0;
    };
    void record_residency(std::uint64_t id, std::size_t page, std::uint16_t valid);
    void flush_run();  // under m_lock

    std::string m_path;
    std::chrono::steady_clock::time_point m_start = std::chrono::steady_clock::now();
    std::mutex m_lock;
    std::vector<event> m_events;
    run m_run;  // the residency run being extended (pages == 0: none)
    std::vector<std::pair<std::uint64_t, std::string>> m_names;
};

}  // namespace usm::detail
