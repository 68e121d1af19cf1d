// bench/workloads_compute.cpp - whole programs: saxpy, heat2d and conjugate
// gradient, each written once for usm (plain host loops over usm memory,
// launches that declare their accesses) and once for the baseline_device
// interface (the hand-written explicit-copy, mapped and SVM programs).
//
// A timed run goes from allocation to the last host access the program
// makes; kernels are built before. Freeing and the full verification that
// some workloads add at the end are not timed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "bench.hpp"
#include "kernels.hpp"

namespace bench {

namespace {

/// Runs `k` once on a tiny allocation so that usm builds its pipeline for
/// group size `l` before anything is timed (baselines build theirs in load()).
template <class... Args>
void warm(usm::device& d, const usm::kernel& k, usm::group l, const Args&... args) {
    d.launch(k, usm::grid{1}, l, args...).wait();
}

/* --- saxpy -------------------------------------------------------------- */
//
// y = a * x + y over n floats, `rounds` times, the host checking all of y
// after every round. x[i] = i & 1023 and y starts at 1, so every value is a
// small integer and exact: round r leaves y[i] = 1 + 2 r (i & 1023).

constexpr float saxpy_a = 2.0f;
constexpr std::size_t saxpy_group = 512;  // 16 M / 512 = 32 768 groups (the limit is 65 535)

bool saxpy_check(const float* y, std::size_t n, int round) {
    bool ok = true;
    const float r2 = 2.0f * static_cast<float>(round);
    for (std::size_t i = 0; i < n; ++i) ok &= y[i] == 1.0f + r2 * static_cast<float>(i & 1023);
    return ok;
}

}  // namespace

result run_saxpy(const options& o, backend_setup& s) {
    const std::size_t n = o.quick ? std::size_t{1} << 20 : std::size_t{16} << 20;
    const int rounds = o.quick ? 3 : 10;
    const std::size_t bytes = n * sizeof(float);
    const usm::grid grid{(n + saxpy_group - 1) / saxpy_group};
    usm::context& ctx = *s.ctx;
    usm::device& dev = *s.dev;

    const usm::kernel k = load(dev, kernels::saxpy);
    {
        auto t = ctx.alloc_unique<float>(saxpy_group);
        warm(dev, k, usm::group{saxpy_group}, usm::read(t.get(), 1), usm::read_write(t.get(), 1), 1.0f, 1u);
    }
    usm::stats last{};
    std::vector<variant> variants;
    variants.push_back({"usm", [&](phases& ph) {
                            ctx.reset_stats();
                            stopwatch sw(ph);
                            auto x = ctx.alloc_unique<float>(n);
                            auto y = ctx.alloc_unique<float>(n);
                            float* hx = x.get().get();
                            float* hy = y.get().get();
                            {
                                phase_timer t(ph, "host init");
                                for (std::size_t i = 0; i < n; ++i) {
                                    hx[i] = static_cast<float>(i & 1023);
                                    hy[i] = 1.0f;
                                }
                            }
                            bool ok = true;
                            for (int r = 1; r <= rounds; ++r) {
                                {
                                    phase_timer t(ph, "launch + kernel");
                                    dev.launch(k, grid, usm::group{saxpy_group}, usm::read(x.get(), n),
                                               usm::read_write(y.get(), n), saxpy_a, static_cast<std::uint32_t>(n))
                                        .wait();
                                }
                                phase_timer t(ph, "host check");
                                ok &= saxpy_check(hy, n, r);
                            }
                            const double seconds = sw.stop();
                            last = ctx.stats();
                            if (!ok) throw mismatch("saxpy/usm: y differs from a * x + y");
                            return seconds;
                        }});
    for (auto& [name, b] : s.programs) {
        baseline_device* d = b;
        const std::size_t kid = d->load(kernels::saxpy, usm::group{saxpy_group});
        variants.push_back({name, [=, &name](phases& ph) {
                                stopwatch sw(ph);
                                const buffer bx = d->alloc(bytes), by = d->alloc(bytes);
                                auto* hx = reinterpret_cast<float*>(d->host(bx));
                                auto* hy = reinterpret_cast<float*>(d->host(by));
                                {
                                    phase_timer t(ph, "host init");
                                    d->begin_host_write(bx, 0, bytes);
                                    d->begin_host_write(by, 0, bytes);
                                    for (std::size_t i = 0; i < n; ++i) {
                                        hx[i] = static_cast<float>(i & 1023);
                                        hy[i] = 1.0f;
                                    }
                                    d->end_host_write(bx, 0, bytes);  // copied in with round 1's kernel
                                    d->end_host_write(by, 0, bytes);
                                }
                                bool ok = true;
                                for (int r = 1; r <= rounds; ++r) {
                                    {
                                        phase_timer t(ph, "copies + kernel");
                                        d->launch(kid, grid, usm::group{saxpy_group},
                                                  {mem(bx), mem(by), val(saxpy_a), val(static_cast<std::uint32_t>(n))});
                                        d->request_read(by, 0, bytes);
                                        d->sync();
                                    }
                                    phase_timer t(ph, "host check");
                                    ok &= saxpy_check(hy, n, r);
                                    d->end_host_read(by, 0, bytes);
                                }
                                const double seconds = sw.stop();
                                d->release_all();
                                if (!ok) throw mismatch("saxpy/" + name + ": y differs from a * x + y");
                                return seconds;
                            }});
    }
    result r = make_result("saxpy", s.backend, "seconds per run",
                           strprintf("%zu floats, %d rounds, host checks all of y each round", n, rounds),
                           measure(o.repetitions, variants));
    r.stats = last;
    add_target(r, "usm <= 1.10 x explicit copy", "explicit-copy", 1.10);
    if (s.backend == "opencl") add_target(r, "usm <= PoCL SVM", "pocl-svm", 1.00);
    return r;
}

/* --- heat2d ------------------------------------------------------------- */
//
// The 5-point stencil of shaders/heat2d.*, n x n, `iterations` steps; every
// 10 steps the host reads 16 cells on 16 different pages (around the left
// edge of the hot square, where values change). Checked against the CPU
// running the same steps: the probes as they are read, the whole grid after
// the timed run.

namespace {

constexpr float heat_alpha = 0.2f;
constexpr int heat_every = 10;
constexpr std::size_t heat_probes = 16;

struct heat_reference {
    std::vector<float> final_grid;
    std::vector<std::vector<float>> probes;  // per read, per probe
    std::vector<std::size_t> cells;          // probe cell indices
};

void heat_init(float* grid, std::uint32_t n, bool full) {
    if (full) std::fill(grid, grid + std::size_t{n} * n, 0.0f);
    for (std::uint32_t i = n / 4; i < 3 * n / 4; ++i)
        std::fill(grid + std::size_t{i} * n + n / 4, grid + std::size_t{i} * n + 3 * n / 4, 100.0f);
}

const heat_reference& heat_ref(std::uint32_t n, int iterations) {
    static std::map<std::pair<std::uint32_t, int>, heat_reference> cache;
    auto [it, fresh] = cache.try_emplace({n, iterations});
    heat_reference& ref = it->second;
    if (!fresh) return ref;
    for (std::size_t p = 0; p < heat_probes; ++p) {
        const std::size_t row = n / 4 + 8 + p * (n / 2 - 16) / heat_probes;
        const std::size_t col = n / 4 - 2 + p % 4;
        ref.cells.push_back(row * n + col);
    }
    const std::size_t cells = std::size_t{n} * n;
    std::vector<float> a(cells), b(cells);
    heat_init(a.data(), n, true);
    for (int step = 1; step <= iterations; ++step) {
        for (std::uint32_t i = 0; i < n; ++i) {
            for (std::uint32_t j = 0; j < n; ++j) {
                const std::size_t c = std::size_t{i} * n + j;
                if (i == 0 || j == 0 || i == n - 1 || j == n - 1) {
                    b[c] = a[c];
                    continue;
                }
                const float sum = a[c - n] + a[c + n] + a[c - 1] + a[c + 1];
                b[c] = a[c] + heat_alpha * (sum - 4.0f * a[c]);
            }
        }
        std::swap(a, b);
        if (step % heat_every == 0) {
            std::vector<float> row;
            for (std::size_t c : ref.cells) row.push_back(a[c]);
            ref.probes.push_back(std::move(row));
        }
    }
    ref.final_grid = std::move(a);
    return ref;
}

/// The device may contract a * b + c into one rounding: allow a few ulps.
bool heat_close(float got, float want) { return std::fabs(got - want) <= 1e-4f * std::max(1.0f, std::fabs(want)); }

bool heat_grid_ok(const float* grid, const std::vector<float>& want) {
    float worst = 0.0f;
    for (std::size_t c = 0; c < want.size(); ++c) worst = std::max(worst, std::fabs(grid[c] - want[c]));
    return worst <= 1e-3f;
}

}  // namespace

result run_heat2d(const options& o, backend_setup& s) {
    const std::uint32_t n = o.quick ? 512 : 2048;
    const int iterations = o.quick ? 20 : 100;
    const std::size_t cells = std::size_t{n} * n, bytes = cells * sizeof(float);
    const usm::grid grid{(n + 15) / 16, (n + 15) / 16};
    const usm::group group{16, 16};
    const heat_reference& ref = heat_ref(n, iterations);
    usm::context& ctx = *s.ctx;
    usm::device& dev = *s.dev;

    const usm::kernel k = load(dev, kernels::heat2d);
    {
        auto t = ctx.alloc_unique<float>(16 * 16);
        warm(dev, k, group, usm::read(t.get(), 256), usm::write(t.get(), 256), 16u, heat_alpha);
    }
    usm::stats last{};
    std::vector<variant> variants;
    variants.push_back({"usm", [&](phases& ph) {
                            ctx.reset_stats();
                            stopwatch sw(ph);
                            auto a = ctx.alloc_unique<float>(cells);
                            auto b = ctx.alloc_unique<float>(cells);
                            {
                                phase_timer t(ph, "host init");
                                heat_init(a.get().get(), n, false);  // fresh usm memory is zero
                            }
                            float* in = a.get().get();
                            float* out = b.get().get();
                            bool ok = true;
                            for (int step = 1; step <= iterations; ++step) {
                                {
                                    phase_timer t(ph, "launches");
                                    dev.launch(k, grid, group, usm::read(in, cells), usm::write(out, cells), n,
                                               heat_alpha);
                                }
                                std::swap(in, out);
                                if (step % heat_every != 0) continue;
                                // The first read waits for the kernels; each brings back one page.
                                phase_timer t(ph, "host probes (wait + faults)");
                                const auto& want = ref.probes[static_cast<std::size_t>(step / heat_every - 1)];
                                for (std::size_t p = 0; p < heat_probes; ++p)
                                    ok &= heat_close(in[ref.cells[p]], want[p]);
                            }
                            const double seconds = sw.stop();
                            last = ctx.stats();
                            if (!ok) throw mismatch("heat2d/usm: a probed cell differs from the CPU's");
                            if (!heat_grid_ok(in, ref.final_grid))
                                throw mismatch("heat2d/usm: the final grid differs from the CPU's");
                            return seconds;
                        }});
    for (auto& [name, bd] : s.programs) {
        baseline_device* d = bd;
        const std::size_t kid = d->load(kernels::heat2d, group);
        variants.push_back({name, [=, &ref, &name](phases& ph) {
                                stopwatch sw(ph);
                                buffer in = d->alloc(bytes), out = d->alloc(bytes);
                                {
                                    phase_timer t(ph, "host init");
                                    d->begin_host_write(in, 0, bytes);
                                    heat_init(reinterpret_cast<float*>(d->host(in)), n, true);
                                    d->end_host_write(in, 0, bytes);
                                }
                                bool ok = true;
                                for (int step = 1; step <= iterations; ++step) {
                                    {
                                        phase_timer t(ph, "record launches");
                                        d->launch(kid, grid, group, {mem(in), mem(out), val(n), val(heat_alpha)});
                                    }
                                    std::swap(in, out);
                                    if (step % heat_every != 0) continue;
                                    phase_timer t(ph, "submit + wait + probes");
                                    for (std::size_t c : ref.cells) d->request_read(in, c * 4, 4);
                                    d->sync();
                                    const auto* h = reinterpret_cast<const float*>(d->host(in));
                                    const auto& want = ref.probes[static_cast<std::size_t>(step / heat_every - 1)];
                                    for (std::size_t p = 0; p < heat_probes; ++p)
                                        ok &= heat_close(h[ref.cells[p]], want[p]);
                                    for (std::size_t c : ref.cells) d->end_host_read(in, c * 4, 4);
                                }
                                const double seconds = sw.stop();
                                d->request_read(in, 0, bytes);
                                d->sync();
                                const bool grid_ok =
                                    heat_grid_ok(reinterpret_cast<const float*>(d->host(in)), ref.final_grid);
                                d->end_host_read(in, 0, bytes);
                                d->release_all();
                                if (!ok) throw mismatch("heat2d/" + name + ": a probed cell differs from the CPU's");
                                if (!grid_ok)
                                    throw mismatch("heat2d/" + name + ": the final grid differs from the CPU's");
                                return seconds;
                            }});
    }
    result r = make_result(
        "heat2d", s.backend, "seconds per run",
        strprintf("%ux%u, %d iterations, host reads %zu cells every %d", n, n, iterations, heat_probes, heat_every),
        measure(o.repetitions, variants));
    r.stats = last;
    add_target(r, "usm <= 1.10 x explicit copy", "explicit-copy", 1.10);
    if (s.backend == "opencl") add_target(r, "usm <= PoCL SVM", "pocl-svm", 1.00);
    return r;
}

/* --- conjugate gradient ------------------------------------------------- */
//
// Solves A x = b for the tridiagonal A = tridiag(-1, 2.05, -1) (condition
// number about 80, so a fixed number of iterations makes steady progress) in
// CSR form, b[i] = 1 + (i & 7) / 8, x0 = 0. Per iteration: spmv, dot, axpy,
// axpy, dot, scale, axpy (7 kernels); the host adds the dot products'
// partial sums (one per 256 elements; 2 reads per iteration) and computes
// alpha and beta.
// After the loop the host reads x and compares it with a double-precision CG
// of the same iterations on the CPU (that read is timed: x is the result).

namespace {

constexpr float cg_diag = 2.05f;
constexpr std::size_t cg_group = 256;   // work-items per group of the element-wise kernels
constexpr std::size_t dot_chunk = 256;  // elements per partial sum (bench_dot)
constexpr std::size_t dot_group = 64;   // work-items (partial sums) per group of bench_dot

void cg_build(std::uint32_t* rowptr, std::uint32_t* col, float* values, float* b, std::size_t n) {
    std::uint32_t k = 0;
    for (std::size_t i = 0; i < n; ++i) {
        rowptr[i] = k;
        if (i > 0) {
            col[k] = static_cast<std::uint32_t>(i - 1);
            values[k++] = -1.0f;
        }
        col[k] = static_cast<std::uint32_t>(i);
        values[k++] = cg_diag;
        if (i + 1 < n) {
            col[k] = static_cast<std::uint32_t>(i + 1);
            values[k++] = -1.0f;
        }
        b[i] = 1.0f + static_cast<float>(i & 7) / 8.0f;
    }
    rowptr[n] = k;
}

const std::vector<double>& cg_reference(std::size_t n, int iterations) {
    static std::map<std::pair<std::size_t, int>, std::vector<double>> cache;
    auto [it, fresh] = cache.try_emplace({n, iterations});
    if (!fresh) return it->second;
    std::vector<double> x(n, 0.0), r(n), p(n), ap(n);
    for (std::size_t i = 0; i < n; ++i) r[i] = p[i] = 1.0 + static_cast<double>(i & 7) / 8.0;
    double rr = 0;
    for (double v : r) rr += v * v;
    for (int k = 0; k < iterations; ++k) {
        for (std::size_t i = 0; i < n; ++i)
            ap[i] = double{cg_diag} * p[i] - (i > 0 ? p[i - 1] : 0.0) - (i + 1 < n ? p[i + 1] : 0.0);
        double pap = 0;
        for (std::size_t i = 0; i < n; ++i) pap += p[i] * ap[i];
        const double alpha = rr / pap;
        double next = 0;
        for (std::size_t i = 0; i < n; ++i) {
            x[i] += alpha * p[i];
            r[i] -= alpha * ap[i];
            next += r[i] * r[i];
        }
        const double beta = next / rr;
        rr = next;
        for (std::size_t i = 0; i < n; ++i) p[i] = r[i] + beta * p[i];
    }
    it->second = std::move(x);
    return it->second;
}

double cg_sum(const float* partial, std::size_t groups) {
    double s = 0;
    for (std::size_t g = 0; g < groups; ++g) s += partial[g];
    return s;
}

/// Largest |x - reference|, relative to the largest |reference|.
double cg_error(const float* x, const std::vector<double>& ref) {
    double worst = 0, scale = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        worst = std::max(worst, std::fabs(static_cast<double>(x[i]) - ref[i]));
        scale = std::max(scale, std::fabs(ref[i]));
    }
    return worst / scale;
}

constexpr double cg_tolerance = 1e-3;

}  // namespace

result run_cg(const options& o, backend_setup& s) {
    const std::size_t n = o.quick ? std::size_t{1} << 16 : std::size_t{1} << 20;
    const int iterations = o.quick ? 10 : 30;
    const std::size_t nnz = 3 * n - 2, groups = (n + dot_chunk - 1) / dot_chunk;
    const std::uint32_t n32 = static_cast<std::uint32_t>(n);
    const usm::grid grid{(n + cg_group - 1) / cg_group};
    const usm::group group{cg_group};
    const usm::grid dot_grid{(groups + dot_group - 1) / dot_group};
    const usm::group dot_lanes{dot_group};
    const std::vector<double>& ref = cg_reference(n, iterations);
    usm::context& ctx = *s.ctx;
    usm::device& dev = *s.dev;

    const usm::kernel spmv = load(dev, kernels::spmv), dot = load(dev, kernels::dot), axpy = load(dev, kernels::axpy),
                      scale = load(dev, kernels::scale), copy = load(dev, kernels::copy);
    {
        auto f = ctx.alloc_unique<float>(cg_group);
        auto u = ctx.alloc_unique<std::uint32_t>(cg_group);
        warm(dev, spmv, group, usm::read(u.get(), 2), usm::read(u.get(), 1), usm::read(f.get(), 1),
             usm::read(f.get(), 1), usm::write(f.get(), 1), 0u);
        warm(dev, dot, dot_lanes, usm::read(f.get(), 1), usm::read(f.get(), 1), usm::write(f.get(), 1), 1u);
        warm(dev, axpy, group, usm::read(f.get(), 1), usm::read_write(f.get(), 1), 1.0f, 1u);
        warm(dev, scale, group, usm::read_write(f.get(), 1), 1.0f, 1u);
        warm(dev, copy, group, usm::read(f.get(), 1), usm::write(f.get(), 1), 1u);
    }

    usm::stats last{};
    std::vector<variant> variants;
    variants.push_back(
        {"usm", [&](phases& ph) {
             ctx.reset_stats();
             stopwatch sw(ph);
             auto rowptr = ctx.alloc_unique<std::uint32_t>(n + 1);
             auto col = ctx.alloc_unique<std::uint32_t>(nnz);
             auto values = ctx.alloc_unique<float>(nnz);
             auto b = ctx.alloc_unique<float>(n), x = ctx.alloc_unique<float>(n), r = ctx.alloc_unique<float>(n),
                  p = ctx.alloc_unique<float>(n), ap = ctx.alloc_unique<float>(n);
             auto partial = ctx.alloc_unique<float>(groups);
             const float* hp = partial.get().get();
             {
                 phase_timer t(ph, "host init");
                 cg_build(rowptr.get().get(), col.get().get(), values.get().get(), b.get().get(), n);
             }
             auto dot_of = [&](usm::ptr<float> u, usm::ptr<float> v) {
                 dev.launch(dot, dot_grid, dot_lanes, usm::read(u, n), usm::read(v, n),
                            usm::write(partial.get(), groups), n32);
                 phase_timer t(ph, "host reads partial sums (wait + faults)");
                 return cg_sum(hp, groups);
             };
             dev.launch(copy, grid, group, usm::read(b.get(), n), usm::write(r.get(), n), n32);
             dev.launch(copy, grid, group, usm::read(r.get(), n), usm::write(p.get(), n), n32);
             double rr = dot_of(r.get(), r.get());
             for (int it = 0; it < iterations; ++it) {
                 dev.launch(spmv, grid, group, usm::read(rowptr.get(), n + 1), usm::read(col.get(), nnz),
                            usm::read(values.get(), nnz), usm::read(p.get(), n), usm::write(ap.get(), n), n32);
                 const double alpha = rr / dot_of(p.get(), ap.get());
                 dev.launch(axpy, grid, group, usm::read(p.get(), n), usm::read_write(x.get(), n),
                            static_cast<float>(alpha), n32);
                 dev.launch(axpy, grid, group, usm::read(ap.get(), n), usm::read_write(r.get(), n),
                            static_cast<float>(-alpha), n32);
                 const double next = dot_of(r.get(), r.get());
                 dev.launch(scale, grid, group, usm::read_write(p.get(), n), static_cast<float>(next / rr), n32);
                 dev.launch(axpy, grid, group, usm::read(r.get(), n), usm::read_write(p.get(), n), 1.0f, n32);
                 rr = next;
             }
             double error;
             {
                 phase_timer t(ph, "host reads x");
                 error = cg_error(x.get().get(), ref);
             }
             const double seconds = sw.stop();
             last = ctx.stats();
             if (!(error <= cg_tolerance))
                 throw mismatch(strprintf("cg/usm: x is %.3g (relative) from the CPU's", error));
             return seconds;
         }});
    for (auto& [name, bd] : s.programs) {
        baseline_device* d = bd;
        const std::size_t k_spmv = d->load(kernels::spmv, group), k_dot = d->load(kernels::dot, dot_lanes),
                          k_axpy = d->load(kernels::axpy, group), k_scale = d->load(kernels::scale, group),
                          k_copy = d->load(kernels::copy, group);
        variants.push_back(
            {name, [=, &ref, &name](phases& ph) {
                 stopwatch sw(ph);
                 const std::size_t fn = n * 4;
                 const buffer rowptr = d->alloc((n + 1) * 4), col = d->alloc(nnz * 4), values = d->alloc(nnz * 4),
                              b = d->alloc(fn), x = d->alloc(fn), r = d->alloc(fn), p = d->alloc(fn), ap = d->alloc(fn),
                              partial = d->alloc(groups * 4);
                 {
                     phase_timer t(ph, "host init");
                     const std::pair<buffer, std::size_t> inputs[] = {
                         {rowptr, (n + 1) * 4}, {col, nnz * 4}, {values, nnz * 4}, {b, fn}};
                     for (auto [h, size] : inputs) d->begin_host_write(h, 0, size);
                     cg_build(reinterpret_cast<std::uint32_t*>(d->host(rowptr)),
                              reinterpret_cast<std::uint32_t*>(d->host(col)), reinterpret_cast<float*>(d->host(values)),
                              reinterpret_cast<float*>(d->host(b)), n);
                     for (auto [h, size] : inputs) d->end_host_write(h, 0, size);
                     d->zero(x);
                 }
                 auto dot_of = [&](buffer u, buffer v) {
                     d->launch(k_dot, dot_grid, dot_lanes, {mem(u), mem(v), mem(partial), val(n32)});
                     d->request_read(partial, 0, groups * 4);
                     phase_timer t(ph, "submit + wait + partial sums");
                     d->sync();
                     const double sum = cg_sum(reinterpret_cast<const float*>(d->host(partial)), groups);
                     d->end_host_read(partial, 0, groups * 4);
                     return sum;
                 };
                 d->launch(k_copy, grid, group, {mem(b), mem(r), val(n32)});
                 d->launch(k_copy, grid, group, {mem(r), mem(p), val(n32)});
                 double rr = dot_of(r, r);
                 for (int it = 0; it < iterations; ++it) {
                     d->launch(k_spmv, grid, group, {mem(rowptr), mem(col), mem(values), mem(p), mem(ap), val(n32)});
                     const double alpha = rr / dot_of(p, ap);
                     d->launch(k_axpy, grid, group, {mem(p), mem(x), val(static_cast<float>(alpha)), val(n32)});
                     d->launch(k_axpy, grid, group, {mem(ap), mem(r), val(static_cast<float>(-alpha)), val(n32)});
                     const double next = dot_of(r, r);
                     d->launch(k_scale, grid, group, {mem(p), val(static_cast<float>(next / rr)), val(n32)});
                     d->launch(k_axpy, grid, group, {mem(r), mem(p), val(1.0f), val(n32)});
                     rr = next;
                 }
                 double error;
                 {
                     phase_timer t(ph, "copy out + host reads x");
                     d->request_read(x, 0, fn);
                     d->sync();
                     error = cg_error(reinterpret_cast<const float*>(d->host(x)), ref);
                     d->end_host_read(x, 0, fn);
                 }
                 const double seconds = sw.stop();
                 d->release_all();
                 if (!(error <= cg_tolerance))
                     throw mismatch(strprintf("cg/%s: x is %.3g (relative) from the CPU's", name.c_str(), error));
                 return seconds;
             }});
    }
    result r =
        make_result("cg", s.backend, "seconds per run",
                    strprintf("N=%zu tridiagonal CSR (%zu nonzeros), %d iterations, 7 kernels and 2 host reads of "
                              "%zu partial sums each",
                              n, nnz, iterations, groups),
                    measure(o.repetitions, variants));
    r.stats = last;
    add_target(r, "usm <= 1.10 x explicit copy", "explicit-copy", 1.10);
    if (s.backend == "opencl") add_target(r, "usm <= PoCL SVM", "pocl-svm", 1.00);
    return r;
}

}  // namespace bench
