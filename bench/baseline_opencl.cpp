// bench/baseline_opencl.cpp - the hand-written OpenCL programs the bench
// compares usm against, on the same device as usm's OpenCL backend and with
// the same OpenCL C (built with the same options, -cl-kernel-arg-info):
//
//   explicit copy   cl_mem buffers, clEnqueueWriteBuffer / ReadBuffer between
//                   them and host arrays (fresh anonymous mappings), one
//                   in-order queue;
//   svm             coarse-grained SVM (clSVMAlloc), the host's accesses
//                   bracketed by clEnqueueSVMMap / clEnqueueSVMUnmap.
#include <sys/mman.h>
#include <CL/opencl.hpp>

#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench.hpp"

namespace bench {

namespace {

void check(cl_int status, const char* what) {
    if (status != CL_SUCCESS)
        throw std::runtime_error(std::string("opencl baseline: ") + what + " failed: " + std::to_string(status));
}

struct cl_buffer {
    cl::Buffer mem;             // explicit copy
    std::byte* host = nullptr;  // explicit: a fresh anonymous mapping; svm: the SVM pointer
    std::size_t bytes = 0;
};

class opencl_baseline final : public baseline_device {
public:
    opencl_baseline(const std::string& device_name, opencl_mode mode) : m_mode(mode) {
        std::vector<cl::Platform> platforms;
        cl::Platform::get(&platforms);
        for (const cl::Platform& p : platforms) {
            std::vector<cl::Device> devices;
            p.getDevices(CL_DEVICE_TYPE_ALL, &devices);
            for (const cl::Device& d : devices)
                if (!m_device() && d.getInfo<CL_DEVICE_NAME>() == device_name) m_device = d;
        }
        if (!m_device()) throw std::runtime_error("opencl baseline: no device named " + device_name);
        m_context = cl::Context(m_device);
        m_queue = cl::CommandQueue(m_context, m_device);
        m_max_alloc = m_device.getInfo<CL_DEVICE_MAX_MEM_ALLOC_SIZE>();
    }

    ~opencl_baseline() override {
        try {
            release_all();
        } catch (...) {
        }
    }

    std::size_t load(const kernel_source& k, usm::group) override {
        const std::string key(k.entry);
        if (auto it = m_index.find(key); it != m_index.end()) return it->second;
        cl::Program program(m_context, std::string(k.opencl));
        try {
            program.build(m_device, "-cl-kernel-arg-info");
        } catch (const cl::BuildError&) {
            throw std::runtime_error("opencl baseline: building " + key + ":\n" +
                                     program.getBuildInfo<CL_PROGRAM_BUILD_LOG>(m_device));
        }
        m_kernels.emplace_back(program, key.c_str());
        m_index.emplace(key, m_kernels.size() - 1);
        return m_kernels.size() - 1;
    }

    buffer alloc(std::size_t bytes) override {
        cl_buffer b;
        b.bytes = bytes;
        if (m_mode == opencl_mode::svm) {
            b.host = static_cast<std::byte*>(clSVMAlloc(m_context(), CL_MEM_READ_WRITE, bytes, 0));
            if (b.host == nullptr) throw std::runtime_error("opencl baseline: clSVMAlloc failed");
        } else {
            b.mem = cl::Buffer(m_context, CL_MEM_READ_WRITE, bytes);
            // Fresh pages from the kernel, as a program that allocates once
            // gets them: malloc would hand later repetitions memory an earlier
            // one already touched (usm's fresh memory is always fresh).
            void* m = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (m == MAP_FAILED) throw std::bad_alloc();
            b.host = static_cast<std::byte*>(m);
        }
        m_buffers.push_back(b);
        return m_buffers.size() - 1;
    }

    void release_all() override {
        m_queue.finish();
        for (cl_buffer& b : m_buffers) {
            if (m_mode == opencl_mode::svm)
                clSVMFree(m_context(), b.host);
            else
                ::munmap(b.host, b.bytes);
        }
        m_buffers.clear();
    }

    std::byte* host(buffer b) override { return m_buffers.at(b).host; }

    void begin_host_write(buffer id, std::size_t off, std::size_t n) override {
        if (m_mode != opencl_mode::svm) return;
        check(clEnqueueSVMMap(m_queue(), CL_TRUE, CL_MAP_WRITE_INVALIDATE_REGION, m_buffers.at(id).host + off, n, 0,
                              nullptr, nullptr),
              "clEnqueueSVMMap");
    }

    void end_host_write(buffer id, std::size_t off, std::size_t n) override {
        const cl_buffer& b = m_buffers.at(id);
        if (m_mode == opencl_mode::svm)
            check(clEnqueueSVMUnmap(m_queue(), b.host + off, 0, nullptr, nullptr), "clEnqueueSVMUnmap");
        else
            m_queue.enqueueWriteBuffer(b.mem, CL_FALSE, off, n, b.host + off);
    }

    void zero(buffer id) override {
        const cl_buffer& b = m_buffers.at(id);
        const cl_uint pattern = 0;
        if (m_mode == opencl_mode::svm)
            check(clEnqueueSVMMemFill(m_queue(), b.host, &pattern, sizeof pattern, b.bytes, 0, nullptr, nullptr),
                  "clEnqueueSVMMemFill");
        else
            m_queue.enqueueFillBuffer(b.mem, pattern, 0, b.bytes);
    }

    void launch(std::size_t k, usm::grid g, usm::group l, std::initializer_list<arg> args) override {
        cl::Kernel& kernel = m_kernels.at(k);
        cl_uint i = 0;
        for (const arg& a : args) {
            if (a.is_buffer) {
                const cl_buffer& b = m_buffers.at(a.b);
                if (m_mode == opencl_mode::svm) {
                    check(clSetKernelArgSVMPointer(kernel(), i, b.host + a.offset), "clSetKernelArgSVMPointer");
                } else {
                    if (a.offset != 0) throw std::logic_error("opencl baseline: buffer offsets need sub-buffers");
                    kernel.setArg(i, b.mem);
                }
            } else {
                check(clSetKernelArg(kernel(), i, a.size, a.bytes), "clSetKernelArg");
            }
            ++i;
        }
        m_queue.enqueueNDRangeKernel(kernel, cl::NullRange, cl::NDRange(g.x * l.x, g.y * l.y, g.z * l.z),
                                     cl::NDRange(l.x, l.y, l.z));
    }

    void request_read(buffer id, std::size_t off, std::size_t n) override {
        const cl_buffer& b = m_buffers.at(id);
        if (m_mode == opencl_mode::svm)
            check(clEnqueueSVMMap(m_queue(), CL_FALSE, CL_MAP_READ, b.host + off, n, 0, nullptr, nullptr),
                  "clEnqueueSVMMap");
        else
            m_queue.enqueueReadBuffer(b.mem, CL_FALSE, off, n, b.host + off);
    }

    void sync() override { m_queue.finish(); }

    void end_host_read(buffer id, std::size_t off, std::size_t) override {
        if (m_mode == opencl_mode::svm)
            check(clEnqueueSVMUnmap(m_queue(), m_buffers.at(id).host + off, 0, nullptr, nullptr), "clEnqueueSVMUnmap");
    }

    std::size_t max_buffer() const override { return m_max_alloc; }

private:
    opencl_mode m_mode;
    cl::Device m_device;
    cl::Context m_context;
    cl::CommandQueue m_queue;
    std::size_t m_max_alloc = 0;
    std::vector<cl::Kernel> m_kernels;
    std::map<std::string, std::size_t> m_index;
    std::vector<cl_buffer> m_buffers;
};

}  // namespace

std::unique_ptr<baseline_device> make_opencl_baseline(const std::string& device_name, opencl_mode mode) {
    return std::make_unique<opencl_baseline>(device_name, mode);
}

}  // namespace bench
