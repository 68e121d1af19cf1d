// core/error.cpp - the "usm" error category.
#include "usm/error.hpp"

namespace usm {

namespace {

class category final : public std::error_category {
public:
    const char* name() const noexcept override { return "usm"; }
    std::string message(int code) const override {
        switch (static_cast<errc>(code)) {
            case errc::out_of_memory:
                return "out of memory";
            case errc::address_space_exhausted:
                return "address space exhausted";
            case errc::not_a_usm_pointer:
                return "not a usm pointer";
            case errc::double_free:
                return "double free";
            case errc::invalid_argument:
                return "invalid argument";
            case errc::out_of_range:
                return "declared range outside its allocation";
            case errc::device_lost:
                return "device lost";
            case errc::transfer_failed:
                return "transfer failed";
            case errc::kernel_build_failed:
                return "kernel build failed";
            case errc::unsupported:
                return "unsupported";
            case errc::wrong_process:
                return "context belongs to another process";
            case errc::no_device:
                return "no usable device";
            case errc::device_fault:
                return "device fault";
        }
        return "unknown usm error";
    }
};

}  // namespace

const std::error_category& error_category() noexcept {
    static const category instance;
    return instance;
}

}  // namespace usm
