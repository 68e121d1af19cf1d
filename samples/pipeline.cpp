// pipeline: two devices, two APIs, one address space. Every frame a producer
// kernel on a Vulkan device writes a synthetic 16-bit signal, a consumer
// kernel on an OpenCL device smooths it ([1 2 1], edges clamped), and the host
// checks every value of both against a CPU reference. No buffer is copied by
// hand: usm waits for the producer, moves its pages to the consumer (through
// the host: Vulkan and OpenCL share no memory path), and the host reads the
// signal it staged on the way for free.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include <kernels/pipeline_consume_cl.hpp>
#include <kernels/pipeline_produce_comp.hpp>

#include "sample.hpp"
#include "usm/usm.hpp"

namespace {

std::uint32_t produce(std::uint32_t i, std::uint32_t frame) {  // shaders/pipeline_produce.comp
    std::uint32_t h = (i ^ (frame * 0x9e3779b9u)) * 2654435761u;
    h ^= h >> 15;
    return h & 0xffffu;
}

usm::device* first_of(usm::context& ctx, usm::backend b) {
    for (usm::device& d : ctx.devices())
        if (d.backend() == b) return &d;
    return nullptr;
}

}  // namespace

int main(int argc, char** argv) try {
    const std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : std::size_t{1} << 20;
    const std::uint32_t frames = 4;
    if (n == 0 || n > 0xffffffffu) {
        std::fprintf(stderr, "pipeline: n must be from 1 to 2^32 - 1\n");
        return 2;
    }
    const auto count = static_cast<std::uint32_t>(n);

    usm::context_options options;
    options.backend = "all";  // both APIs in one context
    usm::context ctx(options);
    usm::device* producer = first_of(ctx, usm::backend::vulkan);
    usm::device* consumer = first_of(ctx, usm::backend::opencl);
    if (producer == nullptr || consumer == nullptr) {
        std::string found;
        for (usm::device& d : ctx.devices()) found += std::string(" ") + usm::to_string(d.backend()) + ":" + d.name();
        std::fprintf(stderr,
                     "pipeline: needs a Vulkan device and an OpenCL device in one context (lavapipe and PoCL will "
                     "do); found:%s%s\n",
                     found.empty() ? " none" : found.c_str(),
                     std::getenv("USM_BACKEND") != nullptr || std::getenv("USM_DEVICE") != nullptr
                         ? " (USM_BACKEND or USM_DEVICE narrows the choice)"
                         : "");
        return 2;
    }

    usm::kernel produce_kernel = producer->load_kernel(usm::spirv(usm::kernels::pipeline_produce_comp));
    usm::kernel consume_kernel =
        consumer->load_kernel(usm::opencl_c(usm::kernels::pipeline_consume_cl), "pipeline_consume");
    usm::unique_ptr<std::uint32_t[]> signal = ctx.alloc_unique<std::uint32_t>(n);
    usm::unique_ptr<std::uint32_t[]> smooth = ctx.alloc_unique<std::uint32_t>(n);
    const usm::grid groups{(n + 255) / 256};

    bool ok = true;
    std::vector<std::uint32_t> want(n);
    for (std::uint32_t frame = 1; frame <= frames; ++frame) {
        // Neither launch is waited for: the consumer's launch waits for the
        // producer's pages, the host's first read for the consumer.
        producer->launch(produce_kernel, groups, usm::group{256}, usm::write(signal.get(), n), count, frame);
        consumer->launch(consume_kernel, groups, usm::group{256}, usm::read(signal.get(), n),
                         usm::write(smooth.get(), n), count, frame);

        for (std::size_t i = 0; i < n; ++i) want[i] = produce(static_cast<std::uint32_t>(i), frame);
        for (std::size_t i = 0; i < n && ok; ++i) {
            const std::uint32_t expected = want[i > 0 ? i - 1 : i] + 2u * want[i] + want[i + 1 < n ? i + 1 : i] + frame;
            if (smooth[i] != expected) {
                std::fprintf(stderr, "pipeline: frame %u: smooth[%zu] = %u, expected %u\n", frame, i, smooth[i],
                             expected);
                ok = false;
            }
        }
        for (std::size_t i = 0; i < n && ok; ++i) {  // staged on its way to the consumer: no fault, no copy
            if (signal[i] != want[i]) {
                std::fprintf(stderr, "pipeline: frame %u: signal[%zu] = %u, expected %u\n", frame, i, signal[i],
                             want[i]);
                ok = false;
            }
        }
    }

    sample::report("pipeline", *producer,
                   "n=" + std::to_string(n) + ", " + std::to_string(frames) + " frames produced here, consumed on " +
                       usm::to_string(consumer->backend()) + " " + consumer->name() + ", host check each",
                   ok, ctx.stats());
    return ok ? 0 : 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 2;
}
