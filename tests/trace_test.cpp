// tests/trace_test.cpp - USM_TRACE, once per backend: the file is valid
// Chrome trace-event JSON (parsed with nlohmann::json), and its events say
// what happened, in order: the upload before its kernel, the host read fault
// after the kernel, the download inside the fault that needed it, evictions
// under a budget, and waits; and usm-report's SVG has a bar for each event.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <kernels/test_increment_cl.hpp>
#include <kernels/test_increment_comp.hpp>

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
        if (e["ph"] == "X" || (e["ph"] == "M" && e["name"] == "thread_name"))
            tracks.insert(e["tid"].get<std::uint64_t>());
    }
    std::ostringstream svg;
    const usm_report::summary drawn = usm_report::render(doc, "trace_test", svg);
    EXPECT_EQ(drawn.bars, complete);
    EXPECT_EQ(drawn.tracks, tracks.size());
    const std::string text = svg.str();
    EXPECT_EQ(text.rfind("<svg", 0), 0u);
    EXPECT_NE(text.find("</svg>"), std::string::npos);
    std::size_t rects = 0;
    for (std::size_t at = text.find("<rect"); at != std::string::npos; at = text.find("<rect", at + 1)) ++rects;
    EXPECT_EQ(rects, complete + 1 + 6);  // the bars, the background, the legend
    EXPECT_THROW(usm_report::render(json::object(), "not a trace", svg), std::runtime_error);
}

}  // namespace

USM_INSTANTIATE_PER_BACKEND(trace);
