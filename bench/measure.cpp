// bench/measure.cpp - repetitions, medians and ratios.
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>

#include "bench.hpp"

namespace bench {

double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double process_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

void phases::add(const std::string& name, double seconds) {
    for (auto& [n, s] : m_list) {
        if (n == name) {
            s += seconds;
            return;
        }
    }
    m_list.emplace_back(name, seconds);
}

std::vector<measured> measure(int reps, std::vector<variant>& variants, int warmup) {
    for (int w = 0; w < warmup; ++w) {
        for (variant& v : variants) {
            phases unused;
            v.run(unused);
        }
    }
    std::vector<measured> out(variants.size());
    std::vector<std::vector<phases>> recorded(variants.size());
    for (std::size_t v = 0; v < variants.size(); ++v) out[v].name = variants[v].name;
    for (int r = 0; r < reps; ++r) {
        for (std::size_t v = 0; v < variants.size(); ++v) {
            phases p;
            const double cpu0 = process_cpu_seconds();
            const double seconds = variants[v].run(p);
            out[v].cpu_samples.push_back(p.cpu.value_or(process_cpu_seconds() - cpu0) / variants[v].divide);
            out[v].samples.push_back(seconds / variants[v].divide);
            recorded[v].push_back(std::move(p));
        }
    }
    for (std::size_t v = 0; v < variants.size(); ++v) {
        if (recorded[v].empty()) continue;
        for (const auto& [name, unused] : recorded[v].front().list()) {
            std::vector<double> values;
            for (const phases& p : recorded[v])
                for (const auto& [n, s] : p.list())
                    if (n == name) values.push_back(s / variants[v].divide);
            out[v].phase_medians.emplace_back(name, median(values));
        }
    }
    return out;
}

result make_result(std::string name, std::string backend, std::string unit, std::string params,
                   const std::vector<measured>& m) {
    result r;
    r.name = std::move(name);
    r.backend = std::move(backend);
    r.unit = std::move(unit);
    r.params = std::move(params);
    for (const measured& x : m) {
        if (x.name == "usm") {
            r.repetitions = static_cast<int>(x.samples.size());
            r.usm_seconds = x.median_seconds();
            r.usm_cpu_seconds = x.median_cpu();
            r.usm_samples = x.samples;
            r.usm_phases = x.phase_medians;
        }
    }
    for (const measured& x : m) {
        if (x.name == "usm") continue;
        baseline_figure b;
        b.name = x.name;
        b.seconds = x.median_seconds();
        b.ratio = b.seconds > 0 ? r.usm_seconds / b.seconds : 0.0;
        b.cpu_seconds = x.median_cpu();
        std::vector<double> paired;
        for (std::size_t i = 0; i < x.samples.size() && i < r.usm_samples.size(); ++i)
            if (x.samples[i] > 0) paired.push_back(r.usm_samples[i] / x.samples[i]);
        b.paired_ratio = median(paired);
        b.samples = x.samples;
        b.phases = x.phase_medians;
        r.baselines.push_back(std::move(b));
    }
    return r;
}

void add_target(result& r, const std::string& text, const std::string& baseline, double limit) {
    for (const baseline_figure& b : r.baselines) {
        if (b.name != baseline) continue;
        target t;
        t.text = text;
        t.baseline = baseline;
        t.limit = limit;
        t.value = b.ratio;
        t.met = b.ratio <= limit;
        r.targets.push_back(t);
        return;
    }
    std::fprintf(stderr, "usm-bench: target '%s' names a baseline '%s' that %s/%s lacks\n", text.c_str(),
                 baseline.c_str(), r.name.c_str(), r.backend.c_str());
}

usm::kernel load(usm::device& d, const kernel_source& k) {
    return d.backend() == usm::backend::vulkan ? d.load_kernel(usm::spirv(k.spirv), "main")
                                               : d.load_kernel(usm::opencl_c(k.opencl), k.entry);
}

}  // namespace bench
