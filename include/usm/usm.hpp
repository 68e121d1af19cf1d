// usm/usm.hpp - the whole public API of usm.
//
// usm gives the host and every GPU of a context one address space: allocate
// with context::alloc, touch the memory from host code, pass it to kernels
// with usm::read / usm::write / usm::read_write, and usm moves the pages.
#pragma once

#include "context.hpp"  // IWYU pragma: export
#include "device.hpp"   // IWYU pragma: export
#include "error.hpp"    // IWYU pragma: export
#include "event.hpp"    // IWYU pragma: export
#include "kernel.hpp"   // IWYU pragma: export
#include "launch.hpp"   // IWYU pragma: export
#include "ptr.hpp"      // IWYU pragma: export
#include "stats.hpp"    // IWYU pragma: export
