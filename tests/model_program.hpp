// tests/model_program.hpp - the model-checked protocol test's programs: random
// operations, the plain-memory reference model they are checked against, and
// the shrinker that cuts a failing program down. Nothing here touches usm:
// model_test.cpp runs programs against a context (docs/model-test.md).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace usm_model {

inline constexpr std::size_t page_bytes = 4096;
inline constexpr std::size_t word_bytes = 4;
/// Host operations run on one of three worker threads or on the main thread
/// (index 3), one operation at a time, so faults come from several threads
/// while the program stays sequential.
inline constexpr std::size_t host_threads = 4;
/// Every context of the test has two logical devices.
inline constexpr std::size_t device_count = 2;

/* --- operations --------------------------------------------------------- */

enum class op_kind : std::uint8_t {
    alloc,          ///< `length` bytes as allocation `id`
    free,           ///< allocation `id`
    host_read,      ///< read bytes [offset, +length) and compare them all
    host_write,     ///< write random bytes (from `value`) to [offset, +length)
    host_update,    ///< b = b * 3 + value for each byte: a read fault, then a write fault
    syscall_read,   ///< host_access(read), then pwrite(2) the range to a memfd and compare what comes back
    syscall_write,  ///< host_access(write), then pread(2) random bytes from a memfd into the range
    kernel_add,     ///< x[i] += value over words [offset, +length), declared read_write
    kernel_fill,    ///< x[i] = pattern for i % stride == 0, declared write (the other words are kept)
    kernel_copy,    ///< words [src_offset, +length) of `src` to [offset, +length) of `id`
    prefetch,       ///< ctx.prefetch of bytes [offset, +length) to `device`, or to the host when `reverse`
    advise,         ///< ctx.advise on bytes [offset, +length): advice number `value` % 6 (see advice_of)
    wait_all,       ///< wait for every launch not yet waited for
};

const char* to_string(op_kind k) noexcept;

enum class where : std::uint8_t { shared, host, device };

/// One operation. Allocations are named by the id their alloc op gave them,
/// so a program with some ops dropped still means something: an op whose
/// allocation is not live is skipped (by the model and by usm alike).
struct op {
    op_kind kind = op_kind::wait_all;
    std::uint32_t index = 0;          ///< position in the generated program; kept when the shrinker drops others
    std::uint32_t id = 0;             ///< the allocation (kernel_copy: the destination)
    std::uint32_t src = 0;            ///< kernel_copy: the source allocation
    std::size_t offset = 0;           ///< host ops, prefetch: bytes; kernels: 32-bit words from the allocation's start
    std::size_t length = 0;           ///< alloc, host ops, prefetch: bytes; kernels: words
    std::size_t src_offset = 0;       ///< kernel_copy: words
    std::uint32_t value = 0;          ///< add: k; fill: seed; host_write, syscall_write: data seed; host_update: addend
    std::uint8_t device = 0;          ///< kernels, prefetch, alloc at where::device
    std::uint8_t thread = 0;          ///< host ops: worker 0-2, or 3 for the main thread
    std::uint8_t stride = 1;          ///< kernel_fill
    bool wait = false;                ///< kernels, prefetch: wait for the event at once
    bool reverse = false;             ///< host_read, host_write: byte by byte, last to first (else memcpy);
                                      ///< syscall ops on userfaultfd: skip host_access (the kernel faults in)
    bool read_write = false;          ///< kernel_copy: declare the destination read_write (else write);
                                      ///< syscall_write: host_access read_write (else write)
    bool any = false;                 ///< kernel_copy: the source is not declared; the kernel reads it through
                                      ///< the page table (usm::any, usm::replayable), faulting its pages in
    where placement = where::shared;  ///< alloc
};

/// What an advise op asks for, from its `value`: read_mostly, unset it,
/// prefer the host, prefer device `device`, unset the preference, access in
/// place from device `device`, or stop that.
enum class model_advice : std::uint8_t {
    read_mostly,
    unset_read_mostly,
    prefer_host,
    prefer_device,
    unset_preferred,
    accessed_by,
    unset_accessed_by,
};
model_advice advice_of(const op& o) noexcept;

/// "#12 host_write a3 [+4093, 7 B) seed=31 on thread 2 memcpy".
std::string describe(const op& o);
/// One line per op; long lists keep their head and tail.
std::string describe(std::span<const op> ops, std::size_t max_lines = 400);

/// The random bytes a host_write or syscall_write stores.
std::vector<std::uint8_t> host_data(const op& o);

/* --- generation --------------------------------------------------------- */

struct generator_options {
    std::size_t ops = 10'000;
    std::size_t max_live = 12;  ///< live allocations at most
    std::size_t max_pages = 64;
};

/// A program of `options.ops` operations, from `seed` alone.
std::vector<op> generate(std::uint64_t seed, const generator_options& options = {});

/// How many ops of each kind `program` holds, as "alloc=12 free=9 ...".
std::string mix(std::span<const op> program);

/* --- the reference model ------------------------------------------------ */

/// Plain memory: what every byte of every live allocation must be, with
/// every operation applied in program order. `mutant` names an op index the
/// model gets wrong on purpose (its effect, or its expected bytes, have the
/// first byte's low bit flipped): the shrinker's own test uses it.
class reference_model {
public:
    explicit reference_model(std::optional<std::uint32_t> mutant = {}) : m_mutant(mutant) {}

    /// True when every allocation `o` names is live (else the op is skipped).
    bool applicable(const op& o) const;
    /// Applies an op that changes memory or liveness (reads change nothing).
    void apply(const op& o);
    /// The bytes a read op must see.
    std::vector<std::uint8_t> expected(const op& o) const;

    bool live(std::uint32_t id) const { return m_memory.count(id) != 0; }
    std::span<const std::uint8_t> bytes(std::uint32_t id) const { return m_memory.at(id); }
    std::vector<std::uint32_t> live_ids() const;
    std::size_t live_count() const noexcept { return m_memory.size(); }
    std::size_t live_bytes() const noexcept;

private:
    void corrupt_if_mutant(const op& o, std::uint8_t* first_byte) const;

    std::map<std::uint32_t, std::vector<std::uint8_t>> m_memory;
    std::optional<std::uint32_t> m_mutant;
};

/* --- running and shrinking ---------------------------------------------- */

/// Why a run failed: the position in the op list that was run (its size for
/// the end-of-program check of every live byte) and what was seen.
struct failure {
    std::size_t position = 0;
    std::string what;
};

/// Runs a program on a fresh context; nothing when usm matched the model.
using runner = std::function<std::optional<failure>(std::span<const op>)>;

struct shrink_limits {
    std::size_t max_runs = 400;
    std::chrono::seconds max_time{300};
    bool drop_ops = true;  ///< after the prefix search, try dropping ops
};

struct shrunk {
    bool reproduced = false;        ///< the failing prefix failed again on a fresh context
    std::size_t prefix_length = 0;  ///< the shortest failing prefix found
    std::vector<op> program;        ///< that prefix with every op dropped that could be
    failure last;                   ///< how `program` fails
    std::size_t runs = 0;
    bool budget_exhausted = false;
};

/// Finds the shortest failing prefix of `program`, which failed as `first`:
/// a binary search between the empty program (which passes) and the prefix
/// ending at the failing op, then tries dropping ops (halves, quarters, ...,
/// single ops) while the program still fails.
shrunk shrink(std::span<const op> program, const failure& first, const runner& run, const shrink_limits& limits = {});

/// The failure report: seed, the failing op, the shortest failing prefix as
/// an op list, and how to rerun.
std::string report(std::uint64_t seed, const std::string& rerun, std::span<const op> program, const failure& first,
                   const shrunk& s);

}  // namespace usm_model
