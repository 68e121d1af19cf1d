// backends/vulkan/vulkan_queues.cpp - timelines, command buffer recycling and
// vkQueueSubmit for the compute and transfer queues.
#include "backends/vulkan/vulkan_queues.hpp"

#include <algorithm>
#include <limits>

namespace usm::detail::vulkan {

/* --- command_batch ------------------------------------------------------------- */

command_batch& command_batch::operator=(command_batch&& other) noexcept {
    if (this != &other) {
        release();
        m_owner = std::exchange(other.m_owner, nullptr);
        m_queue = other.m_queue;
        m_commands = std::exchange(other.m_commands, vk::CommandBuffer());
    }
    return *this;
}

void command_batch::release() noexcept {
    if (m_owner != nullptr) m_owner->give_back(m_queue, m_commands);
    m_owner = nullptr;
    m_commands = vk::CommandBuffer();
}

/* --- queue_set ----------------------------------------------------------------- */

queue_set::queue_set(std::shared_ptr<const logical_device> device, vk::Queue compute, vk::Queue transfer)
    : m_device(std::move(device)) {
    const logical_device& dev = *m_device;
    const bool shared = compute == transfer;
    lane& c = m_lanes[0];
    lane& t = m_lanes[1];
    c.name = "compute queue";
    c.queue = compute;
    c.queue_lock = &m_queue_locks[0];
    c.wait_stage = vk::PipelineStageFlagBits::eComputeShader;
    t.name = "transfer queue";
    t.queue = transfer;
    t.queue_lock = shared ? &m_queue_locks[0] : &m_queue_locks[1];
    t.wait_stage = vk::PipelineStageFlagBits::eTransfer;

    const std::uint32_t families[2] = {dev.compute_family, dev.transfer_family};
    for (std::uint32_t i = 0; i < 2; ++i) {
        lane& l = m_lanes[i];
        const vk::SemaphoreTypeCreateInfo timeline_type(vk::SemaphoreType::eTimeline, 0);
        const vk::SemaphoreCreateInfo semaphore_info({}, &timeline_type);
        l.timeline = take_vk(dev.device().createSemaphoreUnique(semaphore_info), errc::unsupported, "vkCreateSemaphore",
                             dev.name, "timeline of the ", l.name);
        // Command buffers are reset one by one when recycled.
        const vk::CommandPoolCreateInfo pool_info(vk::CommandPoolCreateFlagBits::eResetCommandBuffer, families[i]);
        l.pool = take_vk(dev.device().createCommandPoolUnique(pool_info), errc::unsupported, "vkCreateCommandPool",
                         dev.name, "command pool of the ", l.name);
    }
}

queue_set::~queue_set() {
    // The device waited for its queues before destroying this; waiting again
    // is cheap and makes this class safe on its own.
    wait_idle();
}

queue_set::lane& queue_set::lane_of(sync_point point) {
    if (point.queue > 1)
        throw_error(errc::invalid_argument, "vulkan: sync point {queue ", point.queue, ", value ", point.value,
                    "} names no queue of ", m_device->name, " (0 compute, 1 transfer)");
    lane& l = m_lanes[point.queue];
    const std::uint64_t last = l.last_submitted.load(std::memory_order_acquire);
    if (point.value > last)
        // Waiting for it would never return.
        throw_error(errc::invalid_argument, "vulkan: sync point {queue ", point.queue, ", value ", point.value,
                    "} was never submitted on the ", l.name, " of ", m_device->name, " (last is ", last, ")");
    return l;
}

std::uint64_t queue_set::completed(queue_id queue) {
    const lane& l = lane_of(queue);
    return take_vk(m_device->device().getSemaphoreCounterValue(*l.timeline), errc::device_lost,
                   "vkGetSemaphoreCounterValue", m_device->name, l.name);
}

std::uint64_t queue_set::last_submitted(queue_id queue) const noexcept {
    return lane_of(queue).last_submitted.load(std::memory_order_acquire);
}

command_batch queue_set::begin(queue_id queue) {
    lane& l = lane_of(queue);
    const logical_device& dev = *m_device;
    const std::uint64_t done = completed(queue);

    std::lock_guard lock(l.lock);
    while (!l.in_flight.empty() && l.in_flight.front().first <= done) {
        l.free.push_back(l.in_flight.front().second);
        l.in_flight.pop_front();
    }
    vk::CommandBuffer commands;
    if (!l.free.empty()) {
        commands = l.free.back();
        l.free.pop_back();
    } else {
        const vk::CommandBufferAllocateInfo info(*l.pool, vk::CommandBufferLevel::ePrimary, 1);
        std::vector<vk::CommandBuffer> allocated =
            take_vk(dev.device().allocateCommandBuffers(info), errc::out_of_memory, "vkAllocateCommandBuffers",
                    dev.name, l.name);
        commands = allocated.front();
    }
    // From here the batch owns `commands` and gives it back if beginning fails.
    command_batch batch(this, queue, commands);
    // vkBeginCommandBuffer resets it (the pool allows resetting one by one).
    const vk::CommandBufferBeginInfo begin_info(vk::CommandBufferUsageFlagBits::eOneTimeSubmit);
    const vk::Result began = commands.begin(begin_info);
    if (began != vk::Result::eSuccess) {
        l.free.push_back(commands);
        batch.m_owner = nullptr;  // already given back under the lock
        check_vk(began, errc::device_lost, "vkBeginCommandBuffer", dev.name, l.name);
    }
    return batch;
}

void queue_set::give_back(queue_id queue, vk::CommandBuffer commands) noexcept {
    lane& l = lane_of(queue);
    std::lock_guard lock(l.lock);
    // The next vkBeginCommandBuffer resets it, whatever state it is in now
    // (recording or executable, never pending: it was not submitted).
    l.free.push_back(commands);
}

sync_point queue_set::submit(command_batch& batch, std::span<const sync_point> wait_for) {
    if (batch.m_owner != this)
        throw_error(errc::invalid_argument, "vulkan: command batch submitted to the wrong queue set");
    lane& l = lane_of(batch.m_queue);
    check_vk(batch.m_commands.end(), errc::device_lost, "vkEndCommandBuffer", m_device->name, l.name);
    const sync_point point = submit_locked(l, batch.m_queue, batch.m_commands, wait_for);
    batch.m_owner = nullptr;  // now tracked in l.in_flight
    batch.m_commands = vk::CommandBuffer();
    return point;
}

sync_point queue_set::join(queue_id queue, std::span<const sync_point> wait_for) {
    std::uint64_t latest[2] = {0, 0};
    for (const sync_point& p : wait_for) {
        if (p.empty()) continue;
        lane_of(p);  // validates
        latest[p.queue] = std::max(latest[p.queue], p.value);
    }
    // Points already reached need no waiting (the contract: an empty batch
    // whose waits are all reached is the empty point).
    for (std::uint32_t q = 0; q < 2; ++q)
        if (latest[q] != 0 && completed(static_cast<queue_id>(q)) >= latest[q]) latest[q] = 0;
    if (latest[0] == 0 && latest[1] == 0) return {};
    if (latest[0] == 0) return {1, latest[1]};
    if (latest[1] == 0) return {0, latest[0]};
    const sync_point pending[] = {{0, latest[0]}, {1, latest[1]}};
    return submit_locked(lane_of(queue), queue, vk::CommandBuffer(), pending);
}

sync_point queue_set::submit_locked(lane& target, queue_id queue, vk::CommandBuffer commands,
                                    std::span<const sync_point> wait_for) {
    const logical_device& dev = *m_device;
    // A timeline wait for value v covers every smaller value: keep the
    // largest per queue, so a batch waits on at most two semaphores.
    std::uint64_t latest[2] = {0, 0};
    for (const sync_point& p : wait_for) {
        if (p.empty()) continue;
        lane_of(p);  // validates: a point never submitted would deadlock the queue
        latest[p.queue] = std::max(latest[p.queue], p.value);
    }
    vk::Semaphore wait_semaphores[2];
    std::uint64_t wait_values[2];
    vk::PipelineStageFlags wait_stages[2];
    std::uint32_t waits = 0;
    for (std::uint32_t q = 0; q < 2; ++q) {
        if (latest[q] == 0) continue;
        wait_semaphores[waits] = *m_lanes[q].timeline;
        wait_values[waits] = latest[q];
        // An empty submission (join) has no stage of its own to hold back.
        wait_stages[waits] = commands ? target.wait_stage : vk::PipelineStageFlagBits::eAllCommands;
        ++waits;
    }

    std::lock_guard lock(target.lock);
    const std::uint64_t value = target.last_submitted.load(std::memory_order_relaxed) + 1;
    const vk::Semaphore signal = *target.timeline;
    const vk::TimelineSemaphoreSubmitInfo timeline_info(waits, wait_values, 1, &value);
    const vk::SubmitInfo submit_info(waits, wait_semaphores, wait_stages, commands ? 1 : 0, &commands, 1, &signal,
                                     &timeline_info);
    vk::Result result;
    {
        std::lock_guard queue_lock(*target.queue_lock);
        result = target.queue.submit(1, &submit_info, vk::Fence());
    }
    check_vk(result, errc::device_lost, "vkQueueSubmit", dev.name, target.name, ", timeline value ", value, ", ", waits,
             " wait(s)");
    // Published only after the submit succeeded: a failed submit leaves the
    // timeline as it was, so no one can wait for a value never signalled.
    target.last_submitted.store(value, std::memory_order_release);
    if (commands) target.in_flight.emplace_back(value, commands);
    return {static_cast<std::uint32_t>(queue), value};
}

bool queue_set::reached(sync_point point) {
    if (point.empty()) return true;
    const lane& l = lane_of(point);
    const std::uint64_t value = take_vk(m_device->device().getSemaphoreCounterValue(*l.timeline), errc::device_lost,
                                        "vkGetSemaphoreCounterValue", m_device->name, l.name);
    return value >= point.value;
}

void queue_set::wait(sync_point point) {
    if (point.empty()) return;
    const lane& l = lane_of(point);
    const vk::Semaphore semaphore = *l.timeline;
    const vk::SemaphoreWaitInfo info({}, 1, &semaphore, &point.value);
    for (;;) {
        const vk::Result result = m_device->device().waitSemaphores(info, std::numeric_limits<std::uint64_t>::max());
        if (result == vk::Result::eSuccess) return;
        // VK_TIMEOUT cannot come with an infinite timeout; tolerate it anyway.
        if (result != vk::Result::eTimeout)
            check_vk(result, errc::device_lost, "vkWaitSemaphores", m_device->name, l.name, ", value ", point.value);
    }
}

void queue_set::wait_idle() noexcept {
    for (std::uint32_t q = 0; q < 2; ++q) {
        try {
            wait({q, m_lanes[q].last_submitted.load(std::memory_order_acquire)});
        } catch (const std::exception& e) {
            try {
                log(log_level::error, "wait_idle on ", m_device->name, ": ", e.what());
            } catch (...) {
            }
        }
    }
}

}  // namespace usm::detail::vulkan
