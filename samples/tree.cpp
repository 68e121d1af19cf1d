// tree: a binary search tree built by the host out of usm memory, queried by
// a kernel that follows the tree's usm::ptr links itself (usm::any), the
// answers checked against std::map. The nodes live in several allocations
// and are linked in random insertion order, so a search hops between pages
// and allocations; the device faults on pages it lacks, and usm serves them
// and replays the kernel.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <random>
#include <vector>

#include <kernels/tree_find_cl.hpp>
#include <kernels/tree_find_comp.hpp>

#include "sample.hpp"
#include "usm/usm.hpp"

namespace {

/// A node as tree_find sees it (24 bytes).
struct tree_node {
    usm::ptr<tree_node> left;
    usm::ptr<tree_node> right;
    std::uint32_t key = 0;
    std::uint32_t value = 0;
};
static_assert(sizeof(tree_node) == 24);

constexpr std::uint32_t absent = 0xffffffffu;

}  // namespace

int main(int argc, char** argv) try {
    const std::size_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 8192;
    const std::size_t chunk = 1024;  // nodes per allocation
    const std::uint32_t queries_n = 4096;
    usm::context ctx;
    bool all_ok = true;
    for (usm::device& gpu : ctx.devices()) {
        ctx.reset_stats();
        std::mt19937 rng(11);
        std::vector<usm::unique_ptr<tree_node[]>> chunks;
        std::map<std::uint32_t, std::uint32_t> reference;
        usm::ptr<tree_node> root;
        for (std::size_t i = 0; i < count; ++i) {
            if (i % chunk == 0) chunks.push_back(ctx.alloc_unique<tree_node>(chunk));
            const std::uint32_t key = rng() % (count * 4);
            if (!reference.emplace(key, static_cast<std::uint32_t>(i)).second) continue;  // keys are unique
            usm::ptr<tree_node> n = chunks.back().get() + static_cast<std::ptrdiff_t>(i % chunk);
            n->key = key;
            n->value = static_cast<std::uint32_t>(i);
            usm::ptr<tree_node>* link = &root;  // plain host code over usm memory
            while (*link) link = key < (*link)->key ? &(*link)->left : &(*link)->right;
            *link = n;
        }

        usm::unique_ptr<std::uint32_t[]> queries = ctx.alloc_unique<std::uint32_t>(queries_n);
        usm::unique_ptr<std::uint32_t[]> results = ctx.alloc_unique<std::uint32_t>(queries_n);
        for (std::uint32_t i = 0; i < queries_n; ++i) queries[i] = rng() % (count * 4);  // about 1 in 4 present

        usm::kernel find = sample::load(gpu, usm::kernels::tree_find_comp, usm::kernels::tree_find_cl, "tree_find");
        gpu.launch(find, usm::grid{queries_n / 64}, usm::group{64}, usm::replayable, usm::any,
                   usm::read(queries.get(), queries_n), usm::write(results.get(), queries_n), root.address(), queries_n)
            .wait();

        bool ok = true;
        std::size_t hits = 0;
        for (std::uint32_t i = 0; i < queries_n && ok; ++i) {
            const auto it = reference.find(queries[i]);
            const std::uint32_t expected = it == reference.end() ? absent : it->second;
            hits += it != reference.end() ? 1 : 0;
            if (results[i] != expected) {
                std::fprintf(stderr, "tree: query %u (key %u) gave %u, expected %u\n", i, queries[i], results[i],
                             expected);
                ok = false;
            }
        }
        const usm::stats s = ctx.stats();
        sample::report("tree", gpu,
                       std::to_string(reference.size()) + " keys, " + std::to_string(queries_n) + " queries (" +
                           std::to_string(hits) + " found)",
                       ok, s);
        std::printf("        device faults %llu, replays %llu\n", static_cast<unsigned long long>(s.device_faults),
                    static_cast<unsigned long long>(s.replays));
        all_ok = all_ok && ok;
    }
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "tree: %s\n", e.what());
    return 2;
}
