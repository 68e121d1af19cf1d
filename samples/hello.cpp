// The README's example, built and run by `make demo` so it stays true.
#include <kernels/saxpy_cl.hpp>    // shaders/saxpy.cl, embedded at build time
#include <kernels/saxpy_comp.hpp>  // shaders/saxpy.comp, compiled by glslc at build time
#include <usm/usm.hpp>

#include <cstdio>

int main() {
    usm::context ctx;                                   // every Vulkan and OpenCL device
    usm::device& gpu = ctx.devices().front();
    const std::size_t n = 1 << 20;
    usm::unique_ptr<float[]> x = ctx.alloc_unique<float>(n), y = ctx.alloc_unique<float>(n);
    for (std::size_t i = 0; i < n; ++i) { x[i] = float(i); y[i] = 1.0f; }  // plain host loops

    usm::kernel saxpy = gpu.backend() == usm::backend::vulkan
                            ? gpu.load_kernel(usm::spirv(usm::kernels::saxpy_comp))
                            : gpu.load_kernel(usm::opencl_c(usm::kernels::saxpy_cl), "saxpy");
    gpu.launch(saxpy, usm::grid{n / 256}, usm::group{256},
               usm::read(x.get(), n), usm::read_write(y.get(), n), 2.0f, std::uint32_t(n)).wait();

    float v = y[7];                                     // faults back only the page holding y[7]
    std::printf("hello on %s: y[7] = %g (expected 15)\n%s\n", gpu.name().c_str(), double(v),
                ctx.stats().to_string().c_str());
    return v == 15.0f ? 0 : 1;
}                                                       // unique_ptr frees x and y
