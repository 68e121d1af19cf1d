// tests/model_program.cpp - generation, reference model and shrinking of the
// model test's programs (model_program.hpp).
#include "model_program.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <random>
#include <sstream>

namespace usm_model {

/* --- operations --------------------------------------------------------- */

const char* to_string(op_kind k) noexcept {
    switch (k) {
        case op_kind::alloc:
            return "alloc";
        case op_kind::free:
            return "free";
        case op_kind::host_read:
            return "host_read";
        case op_kind::host_write:
            return "host_write";
        case op_kind::host_update:
            return "host_update";
        case op_kind::syscall_read:
            return "syscall_read";
        case op_kind::syscall_write:
            return "syscall_write";
        case op_kind::kernel_add:
            return "kernel_add";
        case op_kind::kernel_fill:
            return "kernel_fill";
        case op_kind::kernel_copy:
            return "kernel_copy";
        case op_kind::prefetch:
            return "prefetch";
        case op_kind::advise:
            return "advise";
        case op_kind::wait_all:
            return "wait_all";
    }
    return "?";
}

model_advice advice_of(const op& o) noexcept { return static_cast<model_advice>(o.value % 7); }

namespace {

constexpr std::size_t kind_count = static_cast<std::size_t>(op_kind::wait_all) + 1;

std::string thread_name(std::uint8_t t) { return t + 1u == host_threads ? "main" : "thread " + std::to_string(t); }

std::string bytes_range(const op& o) {
    std::ostringstream s;
    s << "a" << o.id << " [+" << o.offset << ", " << o.length << " B)";
    return s.str();
}

std::string words_range(std::uint32_t id, std::size_t offset, std::size_t length) {
    std::ostringstream s;
    s << "a" << id << " words [" << offset << ", +" << length << ") = bytes [+" << offset * word_bytes << ", "
      << length * word_bytes << " B)";
    return s.str();
}

std::uint64_t splitmix(std::uint64_t& state) noexcept {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

std::uint32_t load_word(const std::uint8_t* p) noexcept {
    std::uint32_t w;
    std::memcpy(&w, p, sizeof w);
    return w;
}

void store_word(std::uint8_t* p, std::uint32_t w) noexcept { std::memcpy(p, &w, sizeof w); }

}  // namespace

std::string describe(const op& o) {
    std::ostringstream s;
    s << "#" << o.index << " " << to_string(o.kind) << " ";
    const char* wait = o.wait ? " wait" : " no-wait";
    switch (o.kind) {
        case op_kind::alloc:
            s << "a" << o.id << " " << o.length << " B (" << (o.length + page_bytes - 1) / page_bytes << " pages) "
              << (o.placement == where::shared ? "shared"
                  : o.placement == where::host ? "host"
                                               : "on device " + std::to_string(o.device));
            break;
        case op_kind::free:
            s << "a" << o.id;
            break;
        case op_kind::host_read:
            s << bytes_range(o) << " on " << thread_name(o.thread) << (o.reverse ? " bytewise-reverse" : " memcpy");
            break;
        case op_kind::host_write:
            s << bytes_range(o) << " seed=" << o.value << " on " << thread_name(o.thread)
              << (o.reverse ? " bytewise-reverse" : " memcpy");
            break;
        case op_kind::host_update:
            s << bytes_range(o) << " b=b*3+" << (o.value & 0xff) << " on " << thread_name(o.thread);
            break;
        case op_kind::syscall_read:
            s << bytes_range(o) << " pwrite(2) to a memfd and back on " << thread_name(o.thread)
              << (o.reverse ? ", host_access(read) first on the signal path only" : ", host_access(read) first");
            break;
        case op_kind::syscall_write:
            s << bytes_range(o) << " seed=" << o.value << " pread(2) from a memfd on " << thread_name(o.thread)
              << ", host_access(" << (o.read_write ? "read_write" : "write") << ") first"
              << (o.reverse ? " on the signal path only" : "");
            break;
        case op_kind::kernel_add:
            s << "dev" << int{o.device} << " " << words_range(o.id, o.offset, o.length) << " += " << o.value << wait;
            break;
        case op_kind::kernel_fill:
            s << "dev" << int{o.device} << " " << words_range(o.id, o.offset, o.length) << " seed=" << o.value
              << " stride=" << int{o.stride} << wait;
            break;
        case op_kind::kernel_copy:
            s << "dev" << int{o.device} << " " << words_range(o.src, o.src_offset, o.length) << " -> "
              << words_range(o.id, o.offset, o.length) << (o.read_write ? " (dst read_write)" : " (dst write)")
              << (o.any ? " src through the page table" : "") << wait;
            break;
        case op_kind::prefetch:
            if (o.reverse)
                s << bytes_range(o) << " to the host";
            else
                s << bytes_range(o) << " to dev" << int{o.device} << wait;
            break;
        case op_kind::advise:
            s << bytes_range(o) << " ";
            switch (advice_of(o)) {
                case model_advice::read_mostly:
                    s << "read_mostly";
                    break;
                case model_advice::unset_read_mostly:
                    s << "unset_read_mostly";
                    break;
                case model_advice::prefer_host:
                    s << "preferred_location host";
                    break;
                case model_advice::prefer_device:
                    s << "preferred_location dev" << int{o.device};
                    break;
                case model_advice::unset_preferred:
                    s << "unset_preferred_location";
                    break;
                case model_advice::accessed_by:
                    s << "accessed_by dev" << int{o.device};
                    break;
                case model_advice::unset_accessed_by:
                    s << "unset_accessed_by dev" << int{o.device};
                    break;
            }
            break;
        case op_kind::wait_all:
            break;
    }
    return s.str();
}

std::string describe(std::span<const op> ops, std::size_t max_lines) {
    std::string out;
    const std::size_t head = ops.size() <= max_lines ? ops.size() : max_lines / 2;
    for (std::size_t i = 0; i < head; ++i) out += "    " + describe(ops[i]) + "\n";
    if (head < ops.size()) {
        const std::size_t tail = max_lines - head;
        out += "    ... " + std::to_string(ops.size() - head - tail) + " ops not shown ...\n";
        for (std::size_t i = ops.size() - tail; i < ops.size(); ++i) out += "    " + describe(ops[i]) + "\n";
    }
    return out;
}

std::vector<std::uint8_t> host_data(const op& o) {
    std::vector<std::uint8_t> data(o.length);
    std::uint64_t state = (std::uint64_t{o.value} << 32) ^ o.index;
    for (std::size_t i = 0; i < data.size(); i += 8) {
        const std::uint64_t r = splitmix(state);
        std::memcpy(data.data() + i, &r, std::min<std::size_t>(8, data.size() - i));
    }
    return data;
}

/* --- generation --------------------------------------------------------- */

namespace {

class program_generator {
public:
    program_generator(std::uint64_t seed, const generator_options& options) : m_rng(seed), m_options(options) {}

    std::vector<op> run() {
        std::vector<op> program;
        program.reserve(m_options.ops);
        while (program.size() < m_options.ops) {
            op o = next();
            o.index = static_cast<std::uint32_t>(program.size());
            program.push_back(o);
        }
        return program;
    }

private:
    struct live_allocation {
        std::uint32_t id;
        std::size_t bytes;
    };

    std::size_t uniform(std::size_t lo, std::size_t hi) {  // inclusive
        return std::uniform_int_distribution<std::size_t>(lo, hi)(m_rng);
    }
    bool chance(double p) { return std::bernoulli_distribution(p)(m_rng); }
    std::uint32_t random32() { return static_cast<std::uint32_t>(m_rng()); }

    op next() {
        // Weights, out of 100.
        static constexpr std::array<std::pair<op_kind, int>, kind_count> weights{{
            {op_kind::alloc, 7},
            {op_kind::free, 5},
            {op_kind::host_read, 18},
            {op_kind::host_write, 14},
            {op_kind::host_update, 5},
            {op_kind::syscall_read, 3},
            {op_kind::syscall_write, 3},
            {op_kind::kernel_add, 13},
            {op_kind::kernel_fill, 9},
            {op_kind::kernel_copy, 13},
            {op_kind::prefetch, 4},
            {op_kind::advise, 3},
            {op_kind::wait_all, 3},
        }};
        int roll = static_cast<int>(uniform(0, 99));
        op_kind kind = op_kind::wait_all;
        for (const auto& [k, w] : weights) {
            if (roll < w) {
                kind = k;
                break;
            }
            roll -= w;
        }
        if (m_live.empty() || (kind == op_kind::free && m_live.size() <= 1)) kind = op_kind::alloc;
        if (kind == op_kind::alloc && m_live.size() >= m_options.max_live) kind = op_kind::free;

        op o;
        o.kind = kind;
        switch (kind) {
            case op_kind::alloc:
                return make_alloc();
            case op_kind::free: {
                const std::size_t i = uniform(0, m_live.size() - 1);
                o.id = m_live[i].id;
                m_live.erase(m_live.begin() + static_cast<std::ptrdiff_t>(i));
                return o;
            }
            case op_kind::host_read:
            case op_kind::host_write:
            case op_kind::host_update:
            case op_kind::syscall_read:
            case op_kind::syscall_write:
            case op_kind::prefetch:
            case op_kind::advise: {
                const live_allocation& a = pick();
                o.id = a.id;
                std::tie(o.offset, o.length) = pick_range(a.bytes, 1);
                o.thread = static_cast<std::uint8_t>(uniform(0, host_threads - 1));
                o.value = random32();
                o.reverse = chance(kind == op_kind::host_update ? 0.0 : 0.25);
                o.read_write = chance(0.5);
                o.device = static_cast<std::uint8_t>(uniform(0, device_count - 1));
                o.wait = chance(0.35);
                return o;
            }
            case op_kind::kernel_add:
            case op_kind::kernel_fill: {
                const live_allocation& a = pick_with_words();
                o.id = a.id;
                std::tie(o.offset, o.length) = pick_word_range(a.bytes / word_bytes);
                o.value = random32();
                o.stride = static_cast<std::uint8_t>(chance(0.6) ? 1 : uniform(2, 5));
                o.device = static_cast<std::uint8_t>(uniform(0, device_count - 1));
                o.wait = chance(0.35);
                return o;
            }
            case op_kind::kernel_copy:
                return make_copy();
            case op_kind::wait_all:
                return o;
        }
        return o;
    }

    op make_alloc() {
        op o;
        o.kind = op_kind::alloc;
        o.id = m_next_id++;
        const std::size_t max_bytes = m_options.max_pages * page_bytes;
        switch (uniform(0, 9)) {
            case 0:
            case 1:
            case 2:
                o.length = uniform(1, 64);  // smaller than a page, often not a whole word
                break;
            case 3:
                o.length = page_bytes * uniform(1, 8);
                break;
            case 4:
            case 5:
                o.length = uniform(1, 4 * page_bytes);
                break;
            case 6:  // a page boundary, give or take a few bytes
                o.length = std::max<std::size_t>(1, page_bytes * uniform(1, 16) + uniform(0, 6) - 3);
                break;
            case 7:
            case 8:
                o.length = uniform(1, 16 * page_bytes);
                break;
            default:
                o.length = uniform(1, max_bytes);
                break;
        }
        const std::size_t roll = uniform(0, 99);
        o.placement = roll < 80 ? where::shared : roll < 88 ? where::host : where::device;
        o.device = static_cast<std::uint8_t>(uniform(0, device_count - 1));
        m_live.push_back({o.id, o.length});
        return o;
    }

    op make_copy() {
        op o;
        o.kind = op_kind::kernel_copy;
        o.device = static_cast<std::uint8_t>(uniform(0, device_count - 1));
        o.wait = chance(0.35);
        o.read_write = chance(0.4);
        o.any = chance(0.3);
        const live_allocation dst = pick_with_words();
        const live_allocation src = chance(0.3) ? dst : pick_with_words();
        const std::size_t dst_words = dst.bytes / word_bytes, src_words = src.bytes / word_bytes;
        o.id = dst.id;
        o.src = src.id;
        if (src.id == dst.id) {
            // Within one allocation: two ranges that do not overlap, possibly
            // sharing a page.
            o.length = std::min(pick_word_range(dst_words).second, dst_words / 2);
            const std::size_t first = o.length == 0 ? 0 : uniform(0, dst_words - 2 * o.length);
            const std::size_t second = o.length == 0 ? 0 : uniform(first + o.length, dst_words - o.length);
            const bool src_first = chance(0.5);
            o.src_offset = src_first ? first : second;
            o.offset = src_first ? second : first;
            return o;
        }
        o.length = pick_word_range(std::min(src_words, dst_words)).second;
        o.src_offset = place(src_words, o.length);
        o.offset = place(dst_words, o.length);
        return o;
    }

    /// Where a range of `length` words starts among `words`; an empty range
    /// still starts inside the allocation.
    std::size_t place(std::size_t words, std::size_t length) {
        if (length > 0) return uniform(0, words - length);
        return words == 0 ? 0 : uniform(0, words - 1);
    }

    const live_allocation& pick() { return m_live[uniform(0, m_live.size() - 1)]; }

    /// An allocation holding at least one whole word, when there is one.
    const live_allocation& pick_with_words() {
        for (int tries = 0; tries < 8; ++tries) {
            const live_allocation& a = pick();
            if (a.bytes >= word_bytes) return a;
        }
        return pick();
    }

    /// A range of [0, n): whole, one element, across a page boundary, a tail,
    /// a head, or anywhere; at least `min_length` long when n allows.
    std::pair<std::size_t, std::size_t> pick_range(std::size_t n, std::size_t min_length,
                                                   std::size_t unit = page_bytes) {
        if (n == 0) return {0, 0};
        switch (uniform(0, 9)) {
            case 0:
                return {0, n};
            case 1:
                return {uniform(0, n - 1), 1};
            case 2:
                if (n > unit) {
                    const std::size_t boundary = unit * uniform(1, (n - 1) / unit);
                    const std::size_t off = boundary - uniform(1, std::min(boundary, unit / 8));
                    return {off, uniform(boundary - off + 1, std::min(n - off, boundary - off + unit / 4))};
                }
                break;
            case 3: {
                const std::size_t off = n - uniform(1, std::min(n, 2 * unit));
                return {off, n - off};
            }
            case 4:
                return {0, uniform(std::min(n, min_length), n)};
            default:
                break;
        }
        const std::size_t off = uniform(0, n - 1);
        // Lengths skewed short: most ranges touch one to three pages.
        const std::size_t cap = std::min(n - off, uniform(1, 3 * unit));
        return {off, uniform(std::min(cap, min_length), cap)};
    }

    std::pair<std::size_t, std::size_t> pick_word_range(std::size_t words) {
        if (words == 0 || chance(0.01)) return {words == 0 ? 0 : uniform(0, words - 1), 0};
        return pick_range(words, 1, page_bytes / word_bytes);
    }

    std::mt19937_64 m_rng;
    generator_options m_options;
    std::vector<live_allocation> m_live;
    std::uint32_t m_next_id = 1;
};

}  // namespace

std::vector<op> generate(std::uint64_t seed, const generator_options& options) {
    return program_generator(seed, options).run();
}

std::string mix(std::span<const op> program) {
    std::array<std::size_t, kind_count> counts{};
    std::size_t waited = 0, launches = 0;
    for (const op& o : program) {
        ++counts[static_cast<std::size_t>(o.kind)];
        if (o.kind == op_kind::kernel_add || o.kind == op_kind::kernel_fill || o.kind == op_kind::kernel_copy) {
            ++launches;
            waited += o.wait ? 1 : 0;
        }
    }
    std::string out;
    for (std::size_t k = 0; k < kind_count; ++k)
        out += std::string(k ? " " : "") + to_string(static_cast<op_kind>(k)) + "=" + std::to_string(counts[k]);
    out += " (launches waited at once: " + std::to_string(waited) + "/" + std::to_string(launches) + ")";
    return out;
}

/* --- the reference model ------------------------------------------------ */

bool reference_model::applicable(const op& o) const {
    switch (o.kind) {
        case op_kind::alloc:
            return !live(o.id);
        case op_kind::wait_all:
            return true;
        case op_kind::kernel_copy:
            return live(o.id) && live(o.src);
        default:
            return live(o.id);
    }
}

void reference_model::corrupt_if_mutant(const op& o, std::uint8_t* first_byte) const {
    if (m_mutant && *m_mutant == o.index) *first_byte ^= 1;
}

void reference_model::apply(const op& o) {
    switch (o.kind) {
        case op_kind::alloc:
            m_memory[o.id].assign(o.length, 0);
            return;
        case op_kind::free:
            m_memory.erase(o.id);
            return;
        case op_kind::host_write:
        case op_kind::syscall_write: {
            if (o.length == 0) return;
            const std::vector<std::uint8_t> data = host_data(o);
            std::uint8_t* to = m_memory.at(o.id).data() + o.offset;
            std::copy(data.begin(), data.end(), to);
            corrupt_if_mutant(o, to);
            return;
        }
        case op_kind::host_update: {
            if (o.length == 0) return;
            std::uint8_t* to = m_memory.at(o.id).data() + o.offset;
            for (std::size_t i = 0; i < o.length; ++i) to[i] = static_cast<std::uint8_t>(to[i] * 3 + o.value);
            corrupt_if_mutant(o, to);
            return;
        }
        case op_kind::kernel_add: {
            if (o.length == 0) return;
            std::uint8_t* x = m_memory.at(o.id).data() + o.offset * word_bytes;
            for (std::size_t i = 0; i < o.length; ++i)
                store_word(x + i * word_bytes, load_word(x + i * word_bytes) + o.value);
            corrupt_if_mutant(o, x);
            return;
        }
        case op_kind::kernel_fill: {
            if (o.length == 0) return;
            std::uint8_t* x = m_memory.at(o.id).data() + o.offset * word_bytes;
            for (std::size_t i = 0; i < o.length; i += o.stride)
                store_word(x + i * word_bytes, static_cast<std::uint32_t>(i) * 2654435761u ^ o.value);
            corrupt_if_mutant(o, x);
            return;
        }
        case op_kind::kernel_copy: {
            if (o.length == 0) return;
            const std::vector<std::uint8_t> from(
                m_memory.at(o.src).begin() + static_cast<std::ptrdiff_t>(o.src_offset * word_bytes),
                m_memory.at(o.src).begin() + static_cast<std::ptrdiff_t>((o.src_offset + o.length) * word_bytes));
            std::uint8_t* to = m_memory.at(o.id).data() + o.offset * word_bytes;
            std::copy(from.begin(), from.end(), to);
            corrupt_if_mutant(o, to);
            return;
        }
        case op_kind::host_read:
        case op_kind::syscall_read:
        case op_kind::prefetch:
        case op_kind::advise:
        case op_kind::wait_all:
            return;
    }
}

std::vector<std::uint8_t> reference_model::expected(const op& o) const {
    const std::vector<std::uint8_t>& all = m_memory.at(o.id);
    std::vector<std::uint8_t> out(all.begin() + static_cast<std::ptrdiff_t>(o.offset),
                                  all.begin() + static_cast<std::ptrdiff_t>(o.offset + o.length));
    if (!out.empty()) corrupt_if_mutant(o, out.data());
    return out;
}

std::vector<std::uint32_t> reference_model::live_ids() const {
    std::vector<std::uint32_t> ids;
    for (const auto& [id, bytes] : m_memory) ids.push_back(id);
    return ids;
}

std::size_t reference_model::live_bytes() const noexcept {
    std::size_t total = 0;
    for (const auto& [id, bytes] : m_memory) total += bytes.size();
    return total;
}

/* --- shrinking ---------------------------------------------------------- */

shrunk shrink(std::span<const op> program, const failure& first, const runner& run, const shrink_limits& limits) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + limits.max_time;
    shrunk out;
    auto budget_left = [&] {
        if (out.runs < limits.max_runs && clock::now() < deadline) return true;
        out.budget_exhausted = true;
        return false;
    };
    auto attempt = [&](std::span<const op> ops) {
        ++out.runs;
        return run(ops);
    };

    // The prefix that ends at the failing op must fail again on a fresh
    // context; else the failure depends on timing, and the whole program is
    // the best we have.
    std::size_t hi = std::min(first.position + 1, program.size());
    std::optional<failure> at_hi = attempt(program.first(hi));
    if (!at_hi && hi < program.size()) {
        hi = program.size();
        at_hi = attempt(program);
    }
    if (!at_hi) {
        out.prefix_length = program.size();
        out.program.assign(program.begin(), program.end());
        out.last = first;
        return out;
    }
    out.reproduced = true;

    // Binary search: `lo` passes (the empty program does), `hi` fails. A
    // corruption of usm's state fails every prefix from the op that made it
    // until it is overwritten (the end-of-program check reads every byte),
    // so this finds the op that did it, not only the one that noticed.
    std::size_t lo = 0;
    failure hi_failure = *at_hi;
    while (hi - lo > 1 && budget_left()) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (std::optional<failure> f = attempt(program.first(mid))) {
            hi = mid;
            hi_failure = *f;
        } else {
            lo = mid;
        }
    }
    out.prefix_length = hi;
    out.program.assign(program.begin(), program.begin() + static_cast<std::ptrdiff_t>(hi));
    out.last = hi_failure;

    // Drop ops: chunks of half the program, then quarters, down to single
    // ops, keeping every removal after which the program still fails.
    if (!limits.drop_ops) return out;
    for (std::size_t chunk = std::max<std::size_t>(1, out.program.size() / 2); budget_left();) {
        bool removed = false;
        for (std::size_t start = 0; start < out.program.size() && budget_left();) {
            const std::size_t end = std::min(start + chunk, out.program.size());
            if (end - start == out.program.size()) {
                start = end;
                continue;
            }
            std::vector<op> candidate(out.program.begin(), out.program.begin() + static_cast<std::ptrdiff_t>(start));
            candidate.insert(candidate.end(), out.program.begin() + static_cast<std::ptrdiff_t>(end),
                             out.program.end());
            if (std::optional<failure> f = attempt(candidate)) {
                candidate.resize(std::min(candidate.size(), f->position + 1));
                out.program = std::move(candidate);
                out.last = *f;
                removed = true;
            } else {
                start = end;
            }
        }
        if (chunk == 1 && !removed) break;
        chunk = std::max<std::size_t>(1, chunk / 2);
    }
    return out;
}

std::string report(std::uint64_t seed, const std::string& rerun, std::span<const op> program, const failure& first,
                   const shrunk& s) {
    std::ostringstream r;
    char seed_text[32];
    std::snprintf(seed_text, sizeof seed_text, "0x%016llx", static_cast<unsigned long long>(seed));
    r << "model test FAILED, seed " << seed_text << ", " << program.size() << " ops\n";
    r << "  failing op: "
      << (first.position < program.size() ? describe(program[first.position]) : "end-of-program check") << "\n";
    r << "  what: " << first.what << "\n";
    if (!s.reproduced) {
        r << "  the failure did not happen again on a fresh context (" << s.runs
          << " runs): it depends on timing. Rerun the whole program:\n";
    } else {
        r << "  shortest failing prefix: ops #0.." << program[s.prefix_length - 1].index << " (" << s.prefix_length
          << " ops); with every op dropped that could be (" << s.runs << " runs"
          << (s.budget_exhausted ? ", budget exhausted" : "") << "), " << s.program.size() << " ops fail:\n";
        r << describe(s.program);
        r << "  and fail with: "
          << (s.last.position < s.program.size() ? describe(s.program[s.last.position]) : "end-of-program check")
          << ": " << s.last.what << "\n";
    }
    r << "  rerun: " << rerun << "\n";
    return r.str();
}

}  // namespace usm_model
