// backends/vulkan/vulkan_locks.hpp - every lock of the Vulkan backend, in the
// order they may be taken. All rank below the core's context lock
// (core/lock_order.hpp, level 3): nothing here calls back into the core.
//
//   1. transfer_engine::m_lock  - both staging pools. Held for the whole of
//                                 an upload or download, including host
//                                 waits for staging and, in download, for
//                                 the copies themselves.
//   1. kernel::m_lock           - one kernel's pipeline cache. Taken alone
//                                 (build_spirv, launch), never with another
//                                 backend lock.
//   2. queue_set lane lock      - one queue's command pool and recycling
//                                 lists, and its next timeline value.
//   3. queue_set queue lock     - one VkQueue, around vkQueueSubmit only;
//                                 shared by both lanes when they share the
//                                 VkQueue (lavapipe).
//
// Waiting calls (reached, wait, wait_idle) take none of them: timeline
// semaphores need no external synchronization, and the last submitted value
// of each queue is an atomic. Debug builds assert the order per thread.
#pragma once

#include <cassert>
#include <mutex>

namespace usm::detail::vulkan {

enum lock_rank : int {
    rank_transfer = 1,
    rank_kernel = 1,
    rank_lane = 2,
    rank_queue = 3,
};

namespace lock_detail {
// The rank of the innermost backend lock this thread holds (0: none).
inline thread_local int held_rank = 0;
}  // namespace lock_detail

/// A std::mutex (usable with std::lock_guard) that, in debug builds,
/// asserts it is taken only while holding locks of lower rank.
template <lock_rank Rank>
class ranked_mutex {
public:
    void lock() {
        assert(lock_detail::held_rank < Rank &&
               "Vulkan backend lock order violated (backends/vulkan/vulkan_locks.hpp)");
        m_mutex.lock();
        m_outer_rank = lock_detail::held_rank;
        lock_detail::held_rank = Rank;
    }
    void unlock() {
        lock_detail::held_rank = m_outer_rank;
        m_mutex.unlock();
    }

private:
    std::mutex m_mutex;
    int m_outer_rank = 0;  // written only by the holder
};

}  // namespace usm::detail::vulkan
