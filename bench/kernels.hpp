// bench/kernels.hpp - the kernels the bench runs, each in both forms. usm and
// every baseline run the same SPIR-V and the same OpenCL C.
#pragma once

#include <kernels/bench_axpy_cl.hpp>
#include <kernels/bench_axpy_comp.hpp>
#include <kernels/bench_copy_cl.hpp>
#include <kernels/bench_copy_comp.hpp>
#include <kernels/bench_dot_cl.hpp>
#include <kernels/bench_dot_comp.hpp>
#include <kernels/bench_fill_cl.hpp>
#include <kernels/bench_fill_comp.hpp>
#include <kernels/bench_scale_cl.hpp>
#include <kernels/bench_scale_comp.hpp>
#include <kernels/bench_spmv_cl.hpp>
#include <kernels/bench_spmv_comp.hpp>
#include <kernels/bench_tick_cl.hpp>
#include <kernels/bench_tick_comp.hpp>
#include <kernels/heat2d_cl.hpp>
#include <kernels/heat2d_comp.hpp>
#include <kernels/saxpy_cl.hpp>
#include <kernels/saxpy_comp.hpp>
#include <kernels/stream_add_cl.hpp>
#include <kernels/stream_add_comp.hpp>

#include "bench.hpp"

namespace bench::kernels {

namespace k = usm::kernels;

inline const kernel_source saxpy{"saxpy", k::saxpy_comp, k::saxpy_cl};
inline const kernel_source heat2d{"heat2d", k::heat2d_comp, k::heat2d_cl};
inline const kernel_source fill{"bench_fill", k::bench_fill_comp, k::bench_fill_cl};
inline const kernel_source tick{"bench_tick", k::bench_tick_comp, k::bench_tick_cl};
inline const kernel_source spmv{"bench_spmv", k::bench_spmv_comp, k::bench_spmv_cl};
inline const kernel_source dot{"bench_dot", k::bench_dot_comp, k::bench_dot_cl};
inline const kernel_source axpy{"bench_axpy", k::bench_axpy_comp, k::bench_axpy_cl};
inline const kernel_source scale{"bench_scale", k::bench_scale_comp, k::bench_scale_cl};
inline const kernel_source copy{"bench_copy", k::bench_copy_comp, k::bench_copy_cl};
inline const kernel_source stream_add{"stream_add", k::stream_add_comp, k::stream_add_cl};

/// The value bench_fill stores at index i.
constexpr std::uint32_t fill_value(std::uint32_t i, std::uint32_t seed) { return (i * 2654435761u) ^ seed; }

}  // namespace bench::kernels
