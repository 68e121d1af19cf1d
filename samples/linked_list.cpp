// linked_list: lists of nodes linked by usm::ptr, built by the host, summed
// and extended by kernels that follow the pointers themselves, then walked
// and checked by the host. No range but the list heads is declared: the
// kernels take usm::any and reach every node through the device page table
// (shaders/usm.glsl, shaders/usm.cl); the first touch of a node's page on a
// device is a device fault that usm serves before replaying the kernel.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <numeric>
#include <random>
#include <vector>

#include <kernels/list_append_cl.hpp>
#include <kernels/list_append_comp.hpp>
#include <kernels/list_sum_cl.hpp>
#include <kernels/list_sum_comp.hpp>

#include "sample.hpp"
#include "usm/usm.hpp"

namespace {

/// A node as the kernels see it (16 bytes; see list_sum.comp).
struct node {
    usm::ptr<node> next;
    std::uint32_t value = 0;
    std::uint32_t list = 0;
};
static_assert(sizeof(node) == 16);

}  // namespace

int main(int argc, char** argv) try {
    const std::uint32_t lists = 64;
    const std::size_t per_list = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : 200;
    usm::context ctx;
    bool all_ok = true;
    for (usm::device& gpu : ctx.devices()) {
        ctx.reset_stats();
        // Nodes in two pools, linked in a shuffled order, so a list hops
        // between pages and allocations.
        const std::size_t total = lists * per_list;
        usm::unique_ptr<node[]> pool = ctx.alloc_unique<node>(total - total / 4);
        usm::unique_ptr<node[]> spare = ctx.alloc_unique<node>(total / 4);
        std::vector<usm::ptr<node>> slots;
        for (std::size_t i = 0; i < total - total / 4; ++i) slots.push_back(pool.get() + i);
        for (std::size_t i = 0; i < total / 4; ++i) slots.push_back(spare.get() + i);
        std::shuffle(slots.begin(), slots.end(), std::mt19937(7));

        usm::unique_ptr<usm::ptr<node>[]> heads = ctx.alloc_unique<usm::ptr<node>>(lists);
        std::vector<std::uint32_t> expected(lists, 0);
        std::size_t next_slot = 0;
        for (std::uint32_t l = 0; l < lists; ++l) {
            usm::ptr<node> tail;
            for (std::size_t k = 0; k < per_list; ++k) {
                usm::ptr<node> n = slots[next_slot++];
                n->value = static_cast<std::uint32_t>(l * 7 + k);
                n->list = l;
                if (tail)
                    tail->next = n;
                else
                    heads[l] = n;
                tail = n;
                expected[l] += n->value;
            }
        }

        usm::unique_ptr<std::uint32_t[]> sums = ctx.alloc_unique<std::uint32_t>(lists);
        usm::kernel sum = sample::load(gpu, usm::kernels::list_sum_comp, usm::kernels::list_sum_cl, "list_sum");
        usm::kernel append =
            sample::load(gpu, usm::kernels::list_append_comp, usm::kernels::list_append_cl, "list_append");
        const usm::grid g{1};
        const usm::group one_group{lists};

        bool ok = true;
        auto check_sums = [&](const char* when) {
            for (std::uint32_t l = 0; l < lists && ok; ++l)
                if (sums[l] != expected[l]) {
                    std::fprintf(stderr, "linked_list: %s: list %u sums to %u, expected %u\n", when, l, sums[l],
                                 expected[l]);
                    ok = false;
                }
        };
        // 1. The device sums lists the host built.
        gpu.launch(sum, g, one_group, usm::replayable, usm::any, usm::read(heads.get(), lists),
                   usm::write(sums.get(), lists), lists)
            .wait();
        check_sums("first sum");
        const usm::stats first = ctx.stats();

        // 2. The device appends a node from a fresh allocation to each list.
        usm::unique_ptr<node[]> fresh = ctx.alloc_unique<node>(lists);
        gpu.launch(append, g, one_group, usm::replayable, usm::any, usm::read(heads.get(), lists),
                   fresh.get().address(), lists)
            .wait();
        for (std::uint32_t l = 0; l < lists; ++l) expected[l] += 1000 + l;

        // 3. The host walks every list (faulting the nodes the device wrote
        // back) and checks each one ends in its new node.
        for (std::uint32_t l = 0; l < lists && ok; ++l) {
            std::uint32_t total_value = 0;
            std::size_t length = 0;
            usm::ptr<node> last;
            for (usm::ptr<node> n = heads[l]; n; n = n->next) {
                total_value += n->value;
                ++length;
                last = n;
            }
            if (length != per_list + 1 || total_value != expected[l] || last != fresh.get() + l || last->list != l) {
                std::fprintf(stderr,
                             "linked_list: list %u after append: %zu nodes summing to %u, expected %zu and %u\n", l,
                             length, total_value, per_list + 1, expected[l]);
                ok = false;
            }
        }

        // 4. And the device sums the extended lists.
        gpu.launch(sum, g, one_group, usm::replayable, usm::any, usm::read(heads.get(), lists),
                   usm::write(sums.get(), lists), lists)
            .wait();
        check_sums("sum after append");

        const usm::stats s = ctx.stats();
        sample::report("list", gpu,
                       std::to_string(lists) + " lists of " + std::to_string(per_list) + " nodes, append, host walk",
                       ok, s);
        std::printf("        device faults %llu (first sum %llu), replays %llu\n",
                    static_cast<unsigned long long>(s.device_faults),
                    static_cast<unsigned long long>(first.device_faults), static_cast<unsigned long long>(s.replays));
        all_ok = all_ok && ok;
    }
    return all_ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "linked_list: %s\n", e.what());
    return 2;
}
