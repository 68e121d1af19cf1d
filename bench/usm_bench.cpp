// bench/usm_bench.cpp - usm against hand-written programs and raw operations,
// all measured in this one process, medians of repetitions (docs/performance.md).
//
//   usm-bench [--reps N] [--quick] [--filter A,B] [--backend vulkan|opencl|all] [--mapped] [--json FILE]
//
// Per backend (lavapipe, PoCL) it runs saxpy, heat2d, cg, random-read, sweep,
// resident-launch, page-metadata and oversubscribed; each usm run and each
// baseline run verifies its result, and a mismatch makes the exit status 1.
// The table goes to stdout, progress to stderr, the figures to FILE as JSON.
#include <malloc.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench.hpp"

namespace {

using namespace bench;

const char* const usage =
    "usage: usm-bench [--reps N] [--quick] [--filter A,B] [--backend vulkan|opencl|all] [--mapped] [--json FILE]\n"
    "  --reps N      timed repetitions of every variant, medians reported (default 5; below 5 only to try things);\n"
    "                random-read and resident-launch, a tenth of a second each, run 3 N\n"
    "  --quick       small sizes (CI): saxpy 1M floats x 3, heat2d 512^2 x 20, cg N=64K x 10, sweep 32 MiB,\n"
    "                random reads 256 in 16 MiB, resident launch 4 KiB and 64 MiB, oversubscribed 32 MiB\n"
    "                through a 16 MiB budget\n"
    "  --filter A,B  only workloads whose \"name/backend\" contains A or B (saxpy, heat2d, cg, random-read,\n"
    "                sweep, resident-launch, page-metadata, oversubscribed; e.g. --filter sweep/opencl)\n"
    "  --backend B   vulkan, opencl or all (default all)\n"
    "  --mapped      add the vk-mapped baseline: the Vulkan program using host-visible device memory in place\n"
    "                (no copies; lavapipe's device memory is host memory), the Vulkan analogue of PoCL SVM\n"
    "  --json FILE   write the results as JSON\n";

bool parse(int argc, char** argv, options& o) {
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
            return argv[++i];
        };
        if (a == "--reps")
            o.repetitions = std::atoi(value());
        else if (a == "--quick")
            o.quick = true;
        else if (a == "--filter")
            o.filter = value();
        else if (a == "--backend")
            o.backend = value();
        else if (a == "--json")
            o.json_path = value();
        else if (a == "--mapped")
            o.mapped = true;
        else if (a == "-h" || a == "--help") {
            std::fputs(usage, stdout);
            std::exit(0);
        } else {
            throw std::invalid_argument("unknown argument " + a);
        }
    }
    if (o.repetitions < 1) throw std::invalid_argument("--reps must be at least 1");
    if (o.repetitions < 5)
        std::fprintf(stderr, "usm-bench: %d repetitions: fine for trying things, too few for figures to report\n",
                     o.repetitions);
    if (o.backend != "all" && o.backend != "vulkan" && o.backend != "opencl")
        throw std::invalid_argument("--backend must be vulkan, opencl or all");
    return true;
}

bool selected(const options& o, const std::string& workload, const std::string& backend) {
    if (o.filter.empty()) return true;
    const std::string key = workload + "/" + backend;
    std::stringstream list(o.filter);
    for (std::string item; std::getline(list, item, ',');)
        if (!item.empty() && key.find(item) != std::string::npos) return true;
    return false;
}

/* --- printing ----------------------------------------------------------- */

std::string time_text(double s) {
    char buf[64];
    if (s >= 1.0)
        std::snprintf(buf, sizeof buf, "%.3f s", s);
    else if (s >= 1e-3)
        std::snprintf(buf, sizeof buf, "%.3f ms", s * 1e3);
    else
        std::snprintf(buf, sizeof buf, "%.2f us", s * 1e6);
    return buf;
}

std::string value_text(const result& r, double v) {
    if (r.timed) return time_text(v);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f %%", v * 100.0);
    return buf;
}

std::string phases_text(const std::vector<std::pair<std::string, double>>& p) {
    std::string out;
    for (const auto& [name, s] : p) out += (out.empty() ? "" : ", ") + name + " " + time_text(s);
    return out;
}

void print_result(const result& r) {
    const int reps = r.repetitions;
    std::printf("\n%s / %s: %s\n", r.name.c_str(), r.backend.c_str(), r.params.c_str());
    if (r.timed)
        std::printf(
            "  %s, median of %d (cpu: process CPU time meanwhile, all threads; paired: median of the\n"
            "  per-repetition ratios)\n",
            r.unit.c_str(), reps);
    else
        std::printf("  %s\n", r.unit.c_str());
    if (!r.verified) std::printf("  FAILED: %s\n", r.failure.c_str());
    if (r.timed)
        std::printf("  %-24s %14s   cpu %12s\n", "usm", time_text(r.usm_seconds).c_str(),
                    time_text(r.usm_cpu_seconds).c_str());
    else
        std::printf("  %-24s %14s\n", "usm", value_text(r, r.usm_seconds).c_str());
    for (const baseline_figure& b : r.baselines) {
        if (b.samples.empty())  // derived from others
            std::printf("  %-24s %14s   %16s   usm / this = %.2fx\n", b.name.c_str(), time_text(b.seconds).c_str(), "",
                        b.ratio);
        else
            std::printf("  %-24s %14s   cpu %12s   usm / this = %.2fx (paired %.2fx)\n", b.name.c_str(),
                        time_text(b.seconds).c_str(), time_text(b.cpu_seconds).c_str(), b.ratio, b.paired_ratio);
    }
    for (const target& t : r.targets)
        std::printf("  target: %-62s %8.3f%s  %s\n", t.text.c_str(), r.timed ? t.value : t.value * 100.0,
                    r.timed ? "x" : "%", t.met ? "met" : "MISSED");
    if (!r.usm_phases.empty()) std::printf("  usm phases: %s\n", phases_text(r.usm_phases).c_str());
    for (const baseline_figure& b : r.baselines)
        if (!b.phases.empty()) std::printf("  %s phases: %s\n", b.name.c_str(), phases_text(b.phases).c_str());
    if (r.stats) std::printf("  usm stats (last repetition): %s\n", r.stats->to_string().c_str());
    for (const auto& [k, v] : r.extra) std::printf("  %s = %.6g\n", k.c_str(), v);
    if (!r.note.empty()) std::printf("  note: %s\n", r.note.c_str());
}

void print_summary(const std::vector<result>& results) {
    std::printf("\n%-20s %-7s %12s  %-24s %12s %8s %8s  %-8s\n", "workload", "backend", "usm", "baseline", "baseline",
                "usm/base", "paired", "target");
    for (const result& r : results) {
        bool first = true;
        for (const baseline_figure& b : r.baselines) {
            std::string tgt;
            for (const target& t : r.targets)
                if (t.baseline == b.name) {
                    char buf[48];
                    std::snprintf(buf, sizeof buf, "<=%.2fx %s", t.limit, t.met ? "met" : "MISSED");
                    tgt = buf;
                }
            char paired[16] = "";
            if (!b.samples.empty()) std::snprintf(paired, sizeof paired, "%.2fx", b.paired_ratio);
            std::printf("%-20s %-7s %12s  %-24s %12s %7.2fx %8s  %s\n", first ? r.name.c_str() : "",
                        first ? r.backend.c_str() : "", first ? value_text(r, r.usm_seconds).c_str() : "",
                        b.name.c_str(), time_text(b.seconds).c_str(), b.ratio, paired, tgt.c_str());
            first = false;
        }
        if (r.baselines.empty()) {
            std::string tgt;
            for (const target& t : r.targets)
                tgt = std::string("<=") + value_text(r, t.limit) + (t.met ? " met" : " MISSED");
            std::printf("%-20s %-7s %12s  %-24s %12s %8s %8s  %s\n", r.name.c_str(), r.backend.c_str(),
                        value_text(r, r.usm_seconds).c_str(), "-", "-", "-", "", tgt.c_str());
        }
        if (!r.verified) std::printf("%-20s %-7s FAILED: %s\n", "", "", r.failure.c_str());
    }
}

/* --- JSON --------------------------------------------------------------- */

/// `s` as a JSON string literal.
std::string quoted(const std::string& s) { return nlohmann::json(s).dump(); }

std::string number(double v) {
    if (!std::isfinite(v)) return "null";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
}

std::string numbers(const std::vector<double>& v) {
    std::string out = "[";
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + number(v[i]);
    return out + "]";
}

std::string phases_json(const std::vector<std::pair<std::string, double>>& p) {
    std::string out = "{";
    for (std::size_t i = 0; i < p.size(); ++i) out += (i ? ", " : "") + quoted(p[i].first) + ": " + number(p[i].second);
    return out + "}";
}

std::string stats_json(const usm::stats& s) {
    std::ostringstream o;
    o << "{\"host_read_faults\": " << s.host_read_faults << ", \"host_write_faults\": " << s.host_write_faults
      << ", \"pages_to_device\": " << s.pages_to_device << ", \"bytes_to_device\": " << s.bytes_to_device
      << ", \"pages_to_host\": " << s.pages_to_host << ", \"bytes_to_host\": " << s.bytes_to_host
      << ", \"pages_zero_filled\": " << s.pages_zero_filled << ", \"transfer_batches\": " << s.transfer_batches
      << ", \"launches\": " << s.launches << ", \"kernel_waits\": " << s.kernel_waits
      << ", \"blocks_evicted\": " << s.blocks_evicted << ", \"pages_evicted\": " << s.pages_evicted
      << ", \"pages_written_back\": " << s.pages_written_back << ", \"blocks_pinned\": " << s.blocks_pinned
      << ", \"pages_read_ahead\": " << s.pages_read_ahead << ", \"pages_in_place\": " << s.pages_in_place
      << ", \"blocks_in_place\": " << s.blocks_in_place << ", \"summary\": " << quoted(s.to_string()) << "}";
    return o.str();
}

void write_json(const std::string& path, const options& o, const std::string& machine, double total,
                const std::vector<result>& results) {
    std::ofstream f(path);
    f << "{\n  \"bench\": \"usm-bench\",\n  \"quick\": " << (o.quick ? "true" : "false")
      << ",\n  \"repetitions\": " << o.repetitions << ",\n  \"machine\": " << quoted(machine)
      << ",\n  \"total_seconds\": " << number(total) << ",\n  \"results\": [";
    for (std::size_t i = 0; i < results.size(); ++i) {
        const result& r = results[i];
        f << (i ? "," : "") << "\n    {\"name\": " << quoted(r.name) << ", \"backend\": " << quoted(r.backend)
          << ", \"unit\": " << quoted(r.unit) << ", \"params\": " << quoted(r.params);
        if (r.timed) f << ", \"repetitions\": " << r.repetitions;
        if (r.timed)
            f << ", \"usm_seconds\": " << number(r.usm_seconds)
              << ", \"usm_cpu_seconds\": " << number(r.usm_cpu_seconds)
              << ", \"usm_samples\": " << numbers(r.usm_samples);
        else
            f << ", \"usm_value\": " << number(r.usm_seconds);
        f << ", \"verified\": " << (r.verified ? "true" : "false");
        if (!r.verified) f << ", \"failure\": " << quoted(r.failure);
        if (!r.note.empty()) f << ", \"note\": " << quoted(r.note);
        f << ",\n     \"baselines\": [";
        for (std::size_t j = 0; j < r.baselines.size(); ++j) {
            const baseline_figure& b = r.baselines[j];
            f << (j ? ", " : "") << "{\"name\": " << quoted(b.name) << ", \"seconds\": " << number(b.seconds)
              << ", \"ratio\": " << number(b.ratio);
            if (!b.samples.empty())
                f << ", \"paired_ratio\": " << number(b.paired_ratio) << ", \"cpu_seconds\": " << number(b.cpu_seconds)
                  << ", \"samples\": " << numbers(b.samples);
            if (!b.phases.empty()) f << ", \"phases\": " << phases_json(b.phases);
            f << "}";
        }
        f << "],\n     \"targets\": [";
        for (std::size_t j = 0; j < r.targets.size(); ++j) {
            const target& t = r.targets[j];
            f << (j ? ", " : "") << "{\"text\": " << quoted(t.text) << ", \"baseline\": " << quoted(t.baseline)
              << ", \"limit\": " << number(t.limit) << ", \"value\": " << number(t.value)
              << ", \"met\": " << (t.met ? "true" : "false") << "}";
        }
        f << "]";
        if (!r.usm_phases.empty()) f << ",\n     \"usm_phases\": " << phases_json(r.usm_phases);
        if (r.stats) f << ",\n     \"usm_stats\": " << stats_json(*r.stats);
        if (!r.extra.empty()) f << ",\n     \"extra\": " << phases_json(r.extra);
        f << "}";
    }
    f << "\n  ]\n}\n";
    if (!f) throw std::runtime_error("cannot write " + path);
}

std::string machine_text() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    double load[3] = {};
    ::getloadavg(load, 3);
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s, %u hardware threads, load average %.2f at start", host,
                  std::thread::hardware_concurrency(), load[0]);
    return buf;
}

/// The workloads, in the order they run.
const char* const workloads[] = {"saxpy",         "heat2d",        "cg", "random-read", "sweep", "resident-launch",
                                 "page-metadata", "oversubscribed"};

std::vector<result> run_workload(const std::string& w, const options& o, backend_setup& s) {
    if (w == "saxpy") return {run_saxpy(o, s)};
    if (w == "heat2d") return {run_heat2d(o, s)};
    if (w == "cg") return {run_cg(o, s)};
    if (w == "random-read") return {run_random_read(o, s)};
    if (w == "sweep") return {run_sweep(o, s)};
    if (w == "resident-launch") return run_resident_launch(o, s);
    if (w == "oversubscribed") return {run_oversubscribed(o, s)};
    return {run_metadata(o, s)};
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    try {
        parse(argc, argv, o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "usm-bench: %s\n%s", e.what(), usage);
        return 2;
    }
    // Every buffer of 1 MiB or more, whoever allocates it (the baselines,
    // lavapipe's and PoCL's host-side memory, usm's own tables), comes fresh
    // from mmap and goes back on free: glibc would otherwise raise its mmap
    // threshold after the first free and hand later repetitions pages an
    // earlier one already touched, which a program that allocates once never
    // gets (and usm's memory, freed by punching the memfd, never gets).
    ::mallopt(M_MMAP_THRESHOLD, 1 << 20);
    const auto start = clock::now();
    const std::string machine = machine_text();
    std::printf("usm-bench: %s; %d repetitions per variant%s\n", machine.c_str(), o.repetitions,
                o.quick ? ", quick sizes" : "");
    std::vector<result> results;
    bool failed = false;
    for (const char* backend : {"vulkan", "opencl"}) {
        if (o.backend != "all" && o.backend != backend) continue;
        bool any = false;
        for (const char* w : workloads) any = any || selected(o, w, backend);
        if (!any) continue;
        try {
            usm::context_options co;
            co.backend = backend;
            co.device = std::string(backend) + ":0";
            usm::context ctx(co);
            backend_setup s;
            s.backend = backend;
            s.ctx = &ctx;
            s.dev = &ctx.devices().front();
            const usm::device_properties& p = s.dev->properties();
            std::printf("%s: %s (%s)\n", backend, p.name.c_str(), p.driver.c_str());
            std::vector<std::unique_ptr<baseline_device>> owned;
            if (s.backend == "vulkan") {
                owned.push_back(make_vulkan_baseline(p.name, false));
                s.programs.emplace_back("explicit-copy", owned.back().get());
                if (o.mapped) {
                    try {
                        owned.push_back(make_vulkan_baseline(p.name, true));
                        s.programs.emplace_back("vk-mapped", owned.back().get());
                    } catch (const std::exception& e) {
                        std::printf("  (no vk-mapped baseline: %s)\n", e.what());
                    }
                }
            } else {
                owned.push_back(make_opencl_baseline(p.name, opencl_mode::explicit_copy));
                s.programs.emplace_back("explicit-copy", owned.back().get());
                owned.push_back(make_opencl_baseline(p.name, opencl_mode::svm));
                s.programs.emplace_back("pocl-svm", owned.back().get());
            }
            s.explicit_copy = owned.front().get();
            std::fflush(stdout);

            for (const char* w : workloads) {
                if (!selected(o, w, backend)) continue;
                const auto t0 = clock::now();
                std::vector<result> got;
                try {
                    got = run_workload(w, o, s);
                } catch (const std::exception& e) {  // a mismatch, or a driver or usm error
                    result r;
                    r.name = w;
                    r.backend = backend;
                    r.verified = false;
                    r.failure = e.what();
                    got.push_back(std::move(r));
                    for (auto& b : owned) b->release_all();
                }
                for (result& r : got) {
                    failed = failed || !r.verified;
                    print_result(r);
                    results.push_back(std::move(r));
                }
                std::fflush(stdout);
                std::fprintf(stderr, "usm-bench: %s/%s took %.1f s\n", w, backend, seconds_since(t0));
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "usm-bench: %s: %s\n", backend, e.what());
            failed = true;
        }
    }
    const double total = seconds_since(start);
    if (results.empty() && !failed) {
        std::fprintf(stderr, "usm-bench: no workload matches --filter %s\n", o.filter.c_str());
        return 2;
    }
    print_summary(results);
    std::printf("\nusm-bench: %zu results in %.1f s%s\n", results.size(), total,
                failed ? "; SOME FAILED (see FAILED above)" : "; every result verified");
    if (!o.json_path.empty()) {
        try {
            write_json(o.json_path, o, machine, total, results);
            std::printf("usm-bench: JSON written to %s\n", o.json_path.c_str());
        } catch (const std::exception& e) {
            std::fprintf(stderr, "usm-bench: %s\n", e.what());
            return 1;
        }
    }
    return failed ? 1 : 0;
}
