// bench/workloads_memory.cpp - the memory-system workloads: random 4 KiB
// host reads and a sequential host sweep of device-resident data, launches
// whose arguments are already resident, and page metadata; each against the
// raw operations it is made of (one memcpy, one transfer-queue copy of the
// same size, one SIGSEGV round trip, one empty dispatch), measured in the
// same process.
#include <malloc.h>
#include <signal.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench.hpp"
#include "kernels.hpp"

namespace bench {

namespace {

constexpr std::size_t page = 4096;
constexpr std::size_t words_per_page = page / sizeof(std::uint32_t);
constexpr std::size_t fill_group = 256;
constexpr int warmup = 1;  // untimed rounds first: staging and page tables get touched there

/// Repetitions of the per-operation workloads (random reads, resident
/// launches): three times --reps. One repetition of them takes a tenth of a
/// second, so a burst of load from other jobs can move a median of 5.
int micro_reps(const options& o) { return 3 * o.repetitions; }

std::string size_text(std::size_t bytes) {
    if (bytes >= (std::size_t{1} << 30) && bytes % (std::size_t{1} << 30) == 0)
        return strprintf("%zu GiB", bytes >> 30);
    if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
        return strprintf("%zu MiB", bytes >> 20);
    return strprintf("%zu KiB", bytes >> 10);
}

/// bench_fill's grid for n words: grid-stride, at most 4096 groups.
usm::grid fill_grid(std::size_t n) { return usm::grid{std::clamp<std::size_t>(n / fill_group, 1, 4096)}; }

/// Page indices 0..pages-1 in a random order.
std::vector<std::size_t> shuffled_pages(std::size_t pages, std::mt19937_64& rng) {
    std::vector<std::size_t> v(pages);
    std::iota(v.begin(), v.end(), std::size_t{0});
    std::shuffle(v.begin(), v.end(), rng);
    return v;
}

/// The word of page `p` that the random-read workload reads.
std::size_t word_of(std::size_t p) { return p * words_per_page + p % words_per_page; }

/// What sweep() returns for n words of bench_fill's output with `seed`.
std::uint64_t fill_sum(std::size_t n, std::uint32_t seed) {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        const std::uint64_t lo = kernels::fill_value(static_cast<std::uint32_t>(i), seed);
        const std::uint64_t hi = kernels::fill_value(static_cast<std::uint32_t>(i + 1), seed);
        sum += lo | hi << 32;  // the two words as one little-endian uint64_t
    }
    return sum;
}

/// The host's sweep: reads every byte of n (even) words in order, 8 bytes at
/// a time (a wrapping sum, so that reading is not limited by arithmetic).
std::uint64_t sweep(const std::uint32_t* p, std::size_t n) {
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i + 1 < n; i += 2) {
        std::uint64_t v;
        std::memcpy(&v, p + i, 8);
        sum += v;
    }
    return sum;
}

/* --- the raw SIGSEGV round trip ----------------------------------------- */

void open_for_read(int, siginfo_t* info, void*) {
    const auto p = reinterpret_cast<std::uintptr_t>(info->si_addr) & ~(page - 1);
    ::mprotect(reinterpret_cast<void*>(p), page, PROT_READ);
}

/// A populated private mapping that the raw fault baseline protects and
/// faults back page by page, with its own SIGSEGV handler in place only
/// while it runs (usm's is restored after).
class raw_faults {
public:
    explicit raw_faults(std::size_t bytes) : m_bytes(bytes) {
        void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED) throw std::bad_alloc();
        m_base = static_cast<std::uint32_t*>(m);
        for (std::size_t i = 0; i < bytes / 4; i += words_per_page)
            m_base[i + (i / words_per_page) % words_per_page] = 1;
    }
    ~raw_faults() { ::munmap(m_base, m_bytes); }
    raw_faults(const raw_faults&) = delete;
    raw_faults& operator=(const raw_faults&) = delete;

    /// Reads one word of each of `pages` (all protected first); returns the
    /// seconds the reads took.
    double run(const std::vector<std::size_t>& pages, phases& ph) {
        ::mprotect(m_base, m_bytes, PROT_NONE);
        struct sigaction sa {};
        struct sigaction old {};
        sa.sa_sigaction = &open_for_read;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        ::sigaction(SIGSEGV, &sa, &old);
        std::uint64_t sum = 0;
        stopwatch sw(ph);
        for (std::size_t p : pages) sum += static_cast<const volatile std::uint32_t*>(m_base)[word_of(p)];
        const double seconds = sw.stop();
        ::sigaction(SIGSEGV, &old, nullptr);
        ::mprotect(m_base, m_bytes, PROT_READ | PROT_WRITE);
        if (sum != pages.size()) throw mismatch("random-read/raw-fault: a page read back wrong");
        return seconds;
    }

private:
    std::size_t m_bytes;
    std::uint32_t* m_base = nullptr;
};

}  // namespace

/* --- random 4 KiB host reads --------------------------------------------- */

result run_random_read(const options& o, backend_setup& s) {
    const std::size_t bytes = o.quick ? std::size_t{16} << 20 : std::size_t{64} << 20;
    const std::size_t n = bytes / 4, pages = bytes / page;
    const std::size_t reads = o.quick ? 256 : 1024;
    usm::context& ctx = *s.ctx;
    usm::device& dev = *s.dev;
    baseline_device& raw = *s.explicit_copy;

    const usm::kernel fill = load(dev, kernels::fill);
    auto data = ctx.alloc_unique<std::uint32_t>(n);
    const std::size_t raw_fill = raw.load(kernels::fill, usm::group{fill_group});
    const buffer raw_data = raw.alloc(bytes);
    raw.launch(raw_fill, fill_grid(n), usm::group{fill_group},
               {mem(raw_data), val(static_cast<std::uint32_t>(n)), val(7u)});
    raw.sync();
    std::vector<std::uint32_t> host_data(n);
    for (std::size_t i = 0; i < n; ++i) host_data[i] = kernels::fill_value(static_cast<std::uint32_t>(i), 7u);
    std::vector<std::uint32_t> landing(words_per_page);
    raw_faults faults(bytes);

    usm::stats last{};
    std::mt19937_64 rng(42);
    auto pick = [&] {
        auto v = shuffled_pages(pages, rng);
        v.resize(reads);
        return v;
    };
    std::vector<variant> variants;
    const double divide = static_cast<double>(reads);
    variants.push_back({"usm",
                        [&, rep = 0u](phases& ph) mutable {
                            const std::uint32_t seed = 100 + rep++;
                            dev.launch(fill, fill_grid(n), usm::group{fill_group}, usm::write(data.get(), n),
                                       static_cast<std::uint32_t>(n), seed)
                                .wait();  // every page is now on the device only
                            const auto order = pick();
                            ctx.reset_stats();
                            const std::uint32_t* h = data.get().get();
                            bool ok = true;
                            stopwatch sw(ph);
                            for (std::size_t p : order) {
                                const std::size_t w = word_of(p);
                                ok &= h[w] == kernels::fill_value(static_cast<std::uint32_t>(w), seed);
                            }
                            const double seconds = sw.stop();
                            last = ctx.stats();
                            if (!ok) throw mismatch("random-read/usm: a word read back wrong");
                            return seconds;
                        },
                        divide});
    variants.push_back({"raw-fault", [&](phases& ph) { return faults.run(pick(), ph); }, divide});
    variants.push_back({"raw-transfer-4k",
                        [&](phases& ph) {
                            const auto order = pick();
                            const auto* h = reinterpret_cast<const std::uint32_t*>(raw.host(raw_data));
                            bool ok = true;
                            stopwatch sw(ph);
                            for (std::size_t p : order) {
                                raw.request_read(raw_data, p * page, page);
                                raw.sync();
                                const std::size_t w = word_of(p);
                                ok &= h[w] == kernels::fill_value(static_cast<std::uint32_t>(w), 7u);
                                raw.end_host_read(raw_data, p * page, page);
                            }
                            const double seconds = sw.stop();
                            if (!ok) throw mismatch("random-read/raw-transfer-4k: a word read back wrong");
                            return seconds;
                        },
                        divide});
    variants.push_back({"raw-memcpy-4k",
                        [&](phases& ph) {
                            const auto order = pick();
                            bool ok = true;
                            stopwatch sw(ph);
                            for (std::size_t p : order) {
                                std::memcpy(landing.data(), host_data.data() + p * words_per_page, page);
                                ok &= landing[p % words_per_page] == host_data[word_of(p)];
                            }
                            const double seconds = sw.stop();
                            if (!ok) throw mismatch("random-read/raw-memcpy-4k: a word copied wrong");
                            return seconds;
                        },
                        divide});

    result r =
        make_result("random-read", s.backend, "seconds per 4 KiB read",
                    strprintf("%zu reads of one word each on distinct random pages of %s of device-resident data",
                              reads, size_text(bytes).c_str()),
                    measure(micro_reps(o), variants, warmup));
    raw.release_all();
    r.stats = last;
    // The raw cost of a fault that migrates one page: both round trips.
    baseline_figure both;
    both.name = "raw-fault+transfer";
    for (const baseline_figure& b : r.baselines)
        if (b.name == "raw-fault" || b.name == "raw-transfer-4k") both.seconds += b.seconds;
    both.ratio = r.usm_seconds / both.seconds;
    r.baselines.push_back(both);
    r.extra.emplace_back("usm_beyond_raw_fault_and_transfer_us", (r.usm_seconds - both.seconds) * 1e6);
    add_target(r, "usm <= 1.5 x (raw fault + raw transfer)", "raw-fault+transfer", 1.5);
    return r;
}

/* --- sequential host sweep ---------------------------------------------- */

result run_sweep(const options& o, backend_setup& s) {
    const std::size_t bytes = o.quick ? std::size_t{32} << 20 : std::size_t{256} << 20;
    const std::size_t n = bytes / 4;
    const std::uint32_t n32 = static_cast<std::uint32_t>(n);
    usm::context& ctx = *s.ctx;
    usm::device& dev = *s.dev;
    const std::uint32_t seeds[2] = {11u, 12u};
    const std::uint64_t sums[2] = {fill_sum(n, seeds[0]), fill_sum(n, seeds[1])};

    const usm::kernel fill = load(dev, kernels::fill);
    auto data = ctx.alloc_unique<std::uint32_t>(n);
    usm::stats last{};
    std::vector<variant> variants;
    variants.push_back({"usm", [&, rep = 0u](phases& ph) mutable {
                            const unsigned which = rep++ % 2;
                            dev.launch(fill, fill_grid(n), usm::group{fill_group}, usm::write(data.get(), n), n32,
                                       seeds[which])
                                .wait();
                            ctx.reset_stats();
                            stopwatch sw(ph);
                            const std::uint64_t sum = sweep(data.get().get(), n);
                            const double seconds = sw.stop();
                            last = ctx.stats();
                            if (sum != sums[which]) throw mismatch("sweep/usm: the sum differs");
                            return seconds;
                        }});

    // One device buffer per baseline device, filled by the same kernel.
    std::map<baseline_device*, buffer> buffers;
    for (auto& [name, d] : s.programs) {
        buffers[d] = d->alloc(bytes);
        d->load(kernels::fill, usm::group{fill_group});
    }
    baseline_device& raw = *s.explicit_copy;
    const buffer raw_buffer = buffers.at(&raw);
    variants.push_back({"raw-transfer", [&, rep = 0u](phases& ph) mutable {
                            const unsigned which = rep++ % 2;
                            raw.launch(raw.load(kernels::fill, usm::group{fill_group}), fill_grid(n),
                                       usm::group{fill_group}, {mem(raw_buffer), val(n32), val(seeds[which])});
                            raw.sync();
                            stopwatch sw(ph);
                            raw.request_read(raw_buffer, 0, bytes);
                            raw.sync();
                            const double seconds = sw.stop();
                            const std::uint64_t sum =
                                sweep(reinterpret_cast<const std::uint32_t*>(raw.host(raw_buffer)), n);
                            raw.end_host_read(raw_buffer, 0, bytes);
                            if (sum != sums[which]) throw mismatch("sweep/raw-transfer: the copy differs");
                            return seconds;
                        }});
    std::vector<std::uint32_t> from(n), to(n);
    for (std::size_t i = 0; i < n; ++i) from[i] = kernels::fill_value(static_cast<std::uint32_t>(i), seeds[0]);
    std::memcpy(to.data(), from.data(), bytes);  // both populated
    variants.push_back({"raw-memcpy", [&](phases& ph) {
                            std::memset(to.data(), 0, 64);
                            stopwatch sw(ph);
                            std::memcpy(to.data(), from.data(), bytes);
                            const double seconds = sw.stop();
                            if (std::memcmp(to.data(), from.data(), bytes) != 0)
                                throw mismatch("sweep/raw-memcpy: the copy differs");
                            return seconds;
                        }});
    for (auto& [name, bd] : s.programs) {
        baseline_device* d = bd;
        const buffer b = buffers.at(d);
        variants.push_back({name, [=, &seeds, &sums, &name, rep = 0u](phases& ph) mutable {
                                const unsigned which = rep++ % 2;
                                d->launch(d->load(kernels::fill, usm::group{fill_group}), fill_grid(n),
                                          usm::group{fill_group}, {mem(b), val(n32), val(seeds[which])});
                                d->sync();
                                stopwatch sw(ph);
                                d->request_read(b, 0, bytes);
                                d->sync();
                                const std::uint64_t sum = sweep(reinterpret_cast<const std::uint32_t*>(d->host(b)), n);
                                d->end_host_read(b, 0, bytes);
                                const double seconds = sw.stop();
                                if (sum != sums[which]) throw mismatch("sweep/" + name + ": the sum differs");
                                return seconds;
                            }});
    }
    result r = make_result(
        "sweep", s.backend, "seconds per sweep",
        strprintf("host reads %s of device-resident data in order (a sum of 8-byte words)", size_text(bytes).c_str()),
        measure(o.repetitions, variants, warmup));
    for (auto& [name, d] : s.programs) d->release_all();
    r.stats = last;
    const double gib = static_cast<double>(bytes) / double(1 << 30);
    r.extra.emplace_back("usm_gib_per_s", gib / r.usm_seconds);
    for (const baseline_figure& b : r.baselines)
        if (b.name == "raw-transfer") r.extra.emplace_back("raw_transfer_gib_per_s", gib / b.seconds);
    add_target(r, "usm throughput >= 80% of one raw transfer-queue copy (usm <= 1.25 x)", "raw-transfer", 1.25);
    return r;
}

/* --- launches with resident arguments ----------------------------------- */

std::vector<result> run_resident_launch(const options& o, backend_setup& s) {
    usm::context& ctx = *s.ctx;
    usm::device& dev = *s.dev;
    baseline_device& raw = *s.explicit_copy;
    const int launches = o.quick ? 20 : 50;
    const std::size_t wanted = o.quick ? std::size_t{64} << 20 : std::size_t{1} << 30;
    const std::size_t device_limit = std::min<std::size_t>(
        dev.properties().max_allocation ? dev.properties().max_allocation : wanted, raw.max_buffer());
    const std::size_t big = std::min(wanted, device_limit / page * page);

    const usm::kernel tick = load(dev, kernels::tick);
    const std::size_t raw_tick = raw.load(kernels::tick, usm::group{1});
    std::vector<result> out;
    for (const std::size_t bytes : {page, big}) {
        const std::size_t count = bytes / 4;
        auto p = ctx.alloc_unique<std::uint32_t>(count);
        // Resident from here on: the first launch zero-fills the device copy.
        dev.launch(tick, usm::grid{1}, usm::group{1}, usm::read_write(p.get(), count)).wait();
        // The empty dispatch proper takes a 4 KiB buffer; with the large
        // argument it is measured with a buffer of the same size too.
        std::vector<std::pair<std::string, buffer>> raw_buffers{{"empty-dispatch", raw.alloc(page)}};
        if (bytes != page) raw_buffers.emplace_back("empty-dispatch-same-size", raw.alloc(bytes));
        for (const auto& [name, b] : raw_buffers) raw.zero(b);
        raw.sync();

        usm::stats last{};
        std::vector<variant> variants;
        variants.push_back(
            {"usm",
             [&](phases& ph) {
                 ctx.reset_stats();
                 stopwatch sw(ph);
                 for (int i = 0; i < launches; ++i)
                     dev.launch(tick, usm::grid{1}, usm::group{1}, usm::read_write(p.get(), count)).wait();
                 const double seconds = sw.stop();
                 last = ctx.stats();
                 return seconds;
             },
             static_cast<double>(launches)});
        for (const auto& [name, rb] : raw_buffers) {
            variants.push_back({name,
                                [&, b = rb](phases& ph) {
                                    stopwatch sw(ph);
                                    for (int i = 0; i < launches; ++i) {
                                        raw.launch(raw_tick, usm::grid{1}, usm::group{1}, {mem(b)});
                                        raw.sync();
                                    }
                                    return sw.stop();
                                },
                                static_cast<double>(launches)});
        }
        const std::string label = bytes == page                         ? std::string("4k")
                                  : bytes % (std::size_t{1} << 30) == 0 ? strprintf("%zug", bytes >> 30)
                                                                        : strprintf("%zum", bytes >> 20);
        result r = make_result("resident-launch-" + label, s.backend, "seconds per launch + wait",
                               strprintf("%d launches of a one-item kernel with read_write of a resident %s argument",
                                         launches, size_text(bytes).c_str()),
                               measure(micro_reps(o), variants, warmup));
        r.stats = last;
        if (bytes != page && bytes < wanted)
            r.note = strprintf("argument reduced from %s to %s, the most this device allows", size_text(wanted).c_str(),
                               size_text(bytes).c_str());
        if (last.pages_to_device != 0 || last.pages_zero_filled != 0 || last.transfer_batches != 0)
            r.note += (r.note.empty() ? "" : "; ") + std::string("usm moved pages during the timed launches");
        // Each launch added one to word 0 on the device.
        const std::uint32_t expected = 1u + static_cast<std::uint32_t>((warmup + micro_reps(o)) * launches);
        const std::uint32_t got = p.get()[0];
        std::string wrong;
        if (got != expected) wrong = strprintf("usm counted %u launches, expected %u", got - 1, expected - 1);
        for (const auto& [name, b] : raw_buffers) {
            raw.request_read(b, 0, 4);
            raw.sync();
            const std::uint32_t raw_got = *reinterpret_cast<const std::uint32_t*>(raw.host(b));
            raw.end_host_read(b, 0, 4);
            if (raw_got != expected - 1)
                wrong += strprintf("%s%s counted %u, expected %u", wrong.empty() ? "" : "; ", name.c_str(), raw_got,
                                   expected - 1);
        }
        raw.release_all();
        if (!wrong.empty()) {
            r.verified = false;
            r.failure = "launch counter: " + wrong;
        }
        for (const baseline_figure& b : r.baselines)
            r.extra.emplace_back("usm_beyond_" + b.name + "_us", (r.usm_seconds - b.seconds) * 1e6);
        add_target(r, "usm <= 1.2 x an empty dispatch", "empty-dispatch", 1.2);
        out.push_back(std::move(r));
    }
    return out;
}

/* --- page metadata ------------------------------------------------------ */

result run_metadata(const options& o, backend_setup& s) {
    usm::context& ctx = *s.ctx;
    const std::size_t bytes = o.quick ? std::size_t{256} << 20 : std::size_t{1} << 30;
    auto heap = [] {
        const struct mallinfo2 m = ::mallinfo2();
        return m.uordblks + m.hblkhd;
    };
    const std::size_t before = heap();
    void* p = ctx.alloc_bytes(bytes);
    const std::size_t after = heap();
    ctx.free_bytes(p);
    result r;
    r.name = "page-metadata";
    r.backend = s.backend;
    r.unit = "host bytes per allocated byte";
    r.params = strprintf("host heap growth (mallinfo2) across one %s allocation", size_text(bytes).c_str());
    r.timed = false;
    const double grown = after > before ? static_cast<double>(after - before) : 0.0;
    r.usm_seconds = grown / static_cast<double>(bytes);
    r.extra.emplace_back("metadata_bytes", grown);
    r.extra.emplace_back("allocated_bytes", static_cast<double>(bytes));
    r.extra.emplace_back("bytes_per_page", grown / static_cast<double>(bytes / page));
    target t;
    t.text = "page metadata <= 0.5% of allocated bytes";
    t.limit = 0.005;
    t.value = r.usm_seconds;
    t.met = t.value <= t.limit;
    r.targets.push_back(t);
    return r;
}

}  // namespace bench
