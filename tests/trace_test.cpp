// tests/trace_test.cpp - USM_TRACE, once per backend: the file is valid
// Chrome trace-event JSON (parsed with nlohmann::json), and its events say
// what happened, in order: the upload before its kernel, the host read fault
// after the kernel, the download inside the fault that needed it, evictions
// under a budget, and waits; and usm-report's SVG has a bar for each event.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>
#include <kernels/test_model_copy_cl.hpp>
#include <kernels/test_model_copy_comp.hpp>

#include "report.hpp"
#include "support.hpp"

namespace {

using nlohmann::json;
constexpr std::size_t words_per_page = 1024;
constexpr std::uint64_t queue_tracks = std::uint64_t{1} << 32;

/// A context tracing into a file of its own; `events()` reads it back once
/// the context is gone.
class trace : public usm_test::device_test {
protected:
    usm::context_options options() const override {
        usm::context_options o;
        o.trace = path;
        o.device_budget = std::size_t{4} << 20;  // two 2 MiB blocks
        return o;
    }
    void TearDown() override { std::remove(path.c_str()); }

    /// The trace's events, after closing the context (which writes it; `ctx`
    /// and `dev` are gone then).
    json read_trace() {
        ctx.reset();
        std::ifstream in(path);
        EXPECT_TRUE(in.good()) << "no trace at " << path;
        return json::parse(in);  // throws on anything that is not JSON
    }
    static std::vector<json> named(const json& events, const std::string& name) {
        std::vector<json> out;
        for (const json& e : events)
            if (e.value("name", "") == name) out.push_back(e);
        return out;
    }

    std::string path = testing::TempDir() + "usm_trace_" + std::to_string(::getpid()) + "_" + GetParam() + ".json";
};

TEST_P(trace, is_trace_event_json_whose_events_follow_the_program) {
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    const std::size_t n = 64 * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<std::uint32_t>(i);
    dev->launch(increment, usm::grid{n / 64}, usm::group{64}, usm::read_write(x, n), static_cast<std::uint32_t>(n))
        .wait();
    EXPECT_EQ(x[5 * words_per_page], 5 * words_per_page + 1);  // a host read fault that downloads
    // Three 2 MiB blocks through a budget of two: evictions.
    const std::size_t block_words = std::size_t{2} << 20 >> 2;
    auto big = ctx->alloc<std::uint32_t>(3 * block_words);
    for (std::size_t b = 0; b < 3; ++b)
        dev->launch(increment, usm::grid{block_words / 64}, usm::group{64},
                    usm::read_write(big + static_cast<std::ptrdiff_t>(b * block_words), block_words),
                    static_cast<std::uint32_t>(block_words))
            .wait();
    const std::uint64_t main_thread = static_cast<std::uint64_t>(::gettid());
    const std::string kernel_name = "kernel " + increment.name();
    const std::string device_name = dev->name();  // the context goes next

    const json doc = read_trace();
    ASSERT_TRUE(doc.contains("traceEvents"));
    const json& events = doc["traceEvents"];
    ASSERT_TRUE(events.is_array());
    double last_ts = -1;
    for (const json& e : events) {
        ASSERT_TRUE(e.contains("ph") && e.contains("name") && e.contains("pid") && e.contains("tid")) << e.dump();
        if (e["ph"] == "M") continue;
        ASSERT_EQ(e["ph"], "X") << e.dump();
        ASSERT_TRUE(e["ts"].is_number() && e["dur"].is_number()) << e.dump();
        EXPECT_GE(e["dur"].get<double>(), 0.0);
        EXPECT_GE(e["ts"].get<double>(), last_ts) << "events are not in time order: " << e.dump();
        last_ts = e["ts"].get<double>();
    }

    // The device's compute queue has a named track with the kernels on it.
    bool named_queue = false;
    for (const json& e : events)
        if (e["ph"] == "M" && e["name"] == "thread_name" && e["tid"].get<std::uint64_t>() == queue_tracks)
            named_queue = e["args"]["name"].get<std::string>().find(device_name) != std::string::npos;
    EXPECT_TRUE(named_queue);
    const std::vector<json> kernels = named(events, kernel_name);
    ASSERT_EQ(kernels.size(), 4u);
    const std::vector<json> launches = named(events, "launch " + kernel_name.substr(7));
    ASSERT_EQ(launches.size(), 4u);
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(launches[i]["tid"].get<std::uint64_t>(), main_thread);
        EXPECT_LE(launches[i]["ts"].get<double>(), kernels[i]["ts"].get<double>() + 0.001);
    }
    for (const json& k : kernels) EXPECT_EQ(k["tid"].get<std::uint64_t>(), queue_tracks) << k.dump();

    // The first launch uploaded x before its kernel ran.
    const std::vector<json> uploads = named(events, "upload");
    ASSERT_FALSE(uploads.empty());
    EXPECT_EQ(uploads.front()["args"]["pages"], 64);
    EXPECT_LE(uploads.front()["ts"].get<double>(), kernels.front()["ts"].get<double>());

    // The host read of x[5 * 1024] faulted on this thread after the kernel,
    // and the download it needed lies inside that fault (on the userfaultfd
    // path the handler thread downloads while this thread waits).
    std::vector<json> faults;
    for (const json& f : named(events, "host read fault"))
        if (f["tid"].get<std::uint64_t>() == main_thread) faults.push_back(f);
    ASSERT_FALSE(faults.empty());
    const json& fault = faults.front();
    EXPECT_GE(fault["ts"].get<double>(), kernels.front()["ts"].get<double>());
    EXPECT_EQ(fault["args"]["page"], 5);
    bool inside = false;
    for (const json& d : named(events, "download")) {
        const double begin = d["ts"].get<double>(), end = begin + d["dur"].get<double>();
        const double fault_begin = fault["ts"].get<double>(), fault_end = fault_begin + fault["dur"].get<double>();
        if (begin >= fault_begin && end <= fault_end + 0.001) inside = true;
    }
    EXPECT_TRUE(inside) << "no download inside the fault " << fault.dump();

    // The second block of `big` evicted x's block, the third the first block
    // of `big`, writing back all that the kernel wrote there.
    const std::vector<json> evictions = named(events, "evict");
    ASSERT_EQ(evictions.size(), 2u);
    EXPECT_EQ(evictions[0]["args"]["allocation"], 1);
    EXPECT_EQ(evictions[1]["args"]["allocation"], 2);
    EXPECT_EQ(evictions[1]["args"]["block"], 0);
    EXPECT_EQ(evictions[1]["args"]["written_back"], 512);
    EXPECT_LE(evictions[1]["ts"].get<double>(), kernels.back()["ts"].get<double>());

    // usm-report draws one bar per event, on one row per track.
    std::size_t complete = 0;
    std::set<std::uint64_t> tracks;
    for (const json& e : events) {
        if (e["ph"] == "X") ++complete;
        const bool bar = e["ph"] == "X" && e.value("cat", "") != "residency";  // residency events feed the map
        if (bar || (e["ph"] == "M" && e["name"] == "thread_name")) tracks.insert(e["tid"].get<std::uint64_t>());
    }
    std::ostringstream svg;
    const usm_report::summary drawn = usm_report::render(doc, "trace_test", svg);
    EXPECT_EQ(drawn.bars + drawn.residency_events, complete);
    EXPECT_EQ(drawn.allocations, 2u) << "x and big each get a residency band";
    EXPECT_EQ(drawn.tracks, tracks.size());
    const std::string text = svg.str();
    EXPECT_EQ(text.rfind("<svg", 0), 0u);
    EXPECT_NE(text.find("</svg>"), std::string::npos);
    std::size_t rects = 0;
    for (std::size_t at = text.find("<rect"); at != std::string::npos; at = text.find("<rect", at + 1)) ++rects;
    // The bars, the background, the legend, and the residency map's cells
    // and legend.
    EXPECT_EQ(rects, drawn.bars + 1 + 6 + drawn.residency_rects + drawn.residency_legend);
    EXPECT_THROW(usm_report::render(json::object(), "not a trace", svg), std::runtime_error);
}

TEST_P(trace, residency_events_replay_every_change_of_where_pages_are_valid) {
    usm::kernel increment = usm_test::load(*dev, USM_TEST_KERNEL(test_increment));
    const std::size_t n = 8 * words_per_page;
    auto x = ctx->alloc<std::uint32_t>(n);  // allocation 1: migrated
    auto y = ctx->alloc<std::uint32_t>(n);  // allocation 2: read in place (accessed_by)
    auto z = ctx->alloc<std::uint32_t>(n);  // allocation 3: y copied into it
    for (std::size_t i = 0; i < n; ++i) x[i] = y[i] = 1;
    ctx->advise(y, n, usm::advice::accessed_by, *dev);
    const bool in_place = dev->properties().host_memory_in_place;
    dev->launch(increment, usm::grid{n / 64}, usm::group{64}, usm::read_write(x, n), static_cast<std::uint32_t>(n))
        .wait();
    usm::kernel copy = usm_test::load(*dev, USM_TEST_KERNEL(test_model_copy));
    dev->launch(copy, usm::grid{n / 64}, usm::group{64}, usm::read(y, n), usm::write(z, n),
                static_cast<std::uint32_t>(n))
        .wait();
    EXPECT_EQ(x[3], 2u);  // x's page 0 comes home
    EXPECT_EQ(z[3], 1u);
    const unsigned device_bit = 1u << (dev->index() + 1);

    // Replay the per-page masks from the events.
    const json doc = read_trace();
    std::map<std::uint64_t, std::vector<unsigned>> valid;  // allocation -> per page
    std::map<std::uint64_t, std::vector<unsigned>> seen;   // every mask a page had
    for (const json& e : doc["traceEvents"]) {
        if (e.value("cat", "") != "residency") continue;
        const std::uint64_t id = e["args"]["allocation"].get<std::uint64_t>();
        if (e["name"] == "alloc") valid[id].assign(e["args"]["pages"].get<std::size_t>(), 1u);
        if (e["name"] != "residency") continue;
        const std::size_t first = e["args"]["first"].get<std::size_t>(), pages = e["args"]["pages"].get<std::size_t>();
        ASSERT_LE(first + pages, valid[id].size()) << e.dump();
        for (std::size_t p = first; p < first + pages; ++p) valid[id][p] = e["args"]["valid"].get<unsigned>();
        if (first == 0) seen[id].push_back(e["args"]["valid"].get<unsigned>());
    }
    ASSERT_EQ(valid.size(), 3u);
    // x: the kernel took every page (device only), then the host read took
    // page 0 back as a shared copy.
    EXPECT_EQ(seen[1], (std::vector<unsigned>{device_bit, device_bit | 1u}));
    for (std::size_t p = 1; p < 8; ++p) EXPECT_EQ(valid[1][p], device_bit) << "x page " << p;
    // y: read in place, the device's copy is the host memory itself (no
    // copy moved), and the host keeps its own: still an event.
    if (in_place) {
        ASSERT_FALSE(seen[2].empty()) << "no residency event for the in-place read";
        EXPECT_EQ(seen[2].front(), device_bit | 1u);
    }
}

}  // namespace

USM_INSTANTIATE_PER_BACKEND(trace);

#ifdef USM_HEAT2D
namespace {

/// The heat2d sample, run with USM_TRACE on every device the machine has
/// (lavapipe and PoCL in CI): its trace is valid trace-event JSON, its
/// events are in order and follow the program, and usm-report draws it with
/// a residency map band per allocation.
TEST(heat2d_trace, parses_follows_the_program_and_renders_mixed) {
    const std::string path = testing::TempDir() + "usm_heat2d_trace_" + std::to_string(::getpid()) + ".json";
    const std::string command = "USM_TRACE='" + path + "' '" USM_HEAT2D "' 128 > /dev/null";
    ASSERT_EQ(std::system(command.c_str()), 0) << command;
    std::ifstream in(path);
    ASSERT_TRUE(in.good()) << "no trace at " << path;
    const json doc = json::parse(in);
    std::remove(path.c_str());
    ASSERT_TRUE(doc.contains("traceEvents") && doc["traceEvents"].is_array());
    const json& events = doc["traceEvents"];

    double last_ts = -1;
    std::map<std::uint64_t, std::string> queue_names;  // device queue tracks
    std::map<std::uint64_t, double> allocated, freed;  // allocation -> time
    std::map<std::uint64_t, std::size_t> kernels_on;   // queue track -> kernels
    std::map<std::uint64_t, double> first_kernel;      // queue track -> time
    std::size_t launches = 0, uploads = 0, residency = 0, on_devices = 0;
    for (const json& e : events) {
        ASSERT_TRUE(e.contains("ph") && e.contains("name") && e.contains("tid")) << e.dump();
        const std::uint64_t tid = e["tid"].get<std::uint64_t>();
        if (e["ph"] == "M") {
            if (e["name"] == "thread_name" && tid >= queue_tracks) queue_names[tid] = e["args"]["name"];
            continue;
        }
        ASSERT_EQ(e["ph"], "X") << e.dump();
        const double ts = e["ts"].get<double>();
        EXPECT_GE(ts, last_ts) << "events out of time order: " << e.dump();
        last_ts = ts;
        const std::string name = e["name"];
        if (name == "alloc") allocated[e["args"]["allocation"].get<std::uint64_t>()] = ts;
        if (name == "free") freed[e["args"]["allocation"].get<std::uint64_t>()] = ts;
        if (name == "upload") ++uploads;
        if (name.rfind("launch ", 0) == 0) ++launches;
        if (name.rfind("kernel ", 0) == 0) {
            EXPECT_GE(tid, queue_tracks) << "a kernel off the device tracks: " << e.dump();
            if (kernels_on[tid]++ == 0) first_kernel[tid] = ts;
        }
        if (name == "residency") {
            ++residency;
            const std::uint64_t id = e["args"]["allocation"].get<std::uint64_t>();
            ASSERT_TRUE(allocated.count(id)) << "residency of allocation " << id << " before its alloc event";
            EXPECT_FALSE(freed.count(id)) << "residency of allocation " << id << " after its free event";
            EXPECT_GT(e["args"]["pages"].get<std::uint64_t>(), 0u);
            EXPECT_NE(e["args"]["valid"].get<unsigned>(), 0u) << "a page with no valid copy: " << e.dump();
            if ((e["args"]["valid"].get<unsigned>() & ~1u) != 0) ++on_devices;
        }
    }
    // heat2d: 200 iterations on each device, each a launch and a kernel,
    // two grids per device, all freed before the context ends.
    ASSERT_FALSE(queue_names.empty());
    for (const auto& [track, name] : queue_names) {
        if ((track - queue_tracks) % 2 != 0) continue;  // compute tracks only
        EXPECT_EQ(kernels_on[track], 200u) << name;
    }
    EXPECT_EQ(launches, 200u * kernels_on.size());
    EXPECT_GE(uploads, kernels_on.size());
    EXPECT_EQ(allocated.size(), 2u * kernels_on.size());
    EXPECT_EQ(freed.size(), allocated.size());
    for (const auto& [id, at] : freed) EXPECT_GT(at, allocated[id]);
    EXPECT_GT(on_devices, 0u) << "no page was ever valid on a device";

    std::ostringstream svg;
    const usm_report::summary drawn = usm_report::render(doc, "heat2d", svg);
    EXPECT_EQ(drawn.residency_events, residency + allocated.size() + freed.size());
    EXPECT_EQ(drawn.allocations, allocated.size());
    EXPECT_GT(drawn.residency_rects, drawn.residency_rows) << "pages changed location over time";
    EXPECT_GT(drawn.bars, 400u);
    EXPECT_NE(svg.str().find("</svg>"), std::string::npos);
}

}  // namespace
#endif
