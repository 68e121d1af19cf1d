// backends/opencl/opencl_info.cpp - typed clGet*Info queries.
#include "backends/opencl/opencl_info.hpp"

namespace usm::detail::opencl {

namespace {

// clGet*Info string protocol: ask for the size, then the bytes. The result
// includes a NUL, which std::string must not keep.
template <class Object, class Param, class Query>
std::string query_string(Query query, Object object, Param param, const char* call, const char* param_name,
                         std::string_view who) {
    std::size_t size = 0;
    check_cl_as(errc::unsupported, query(object, param, 0, nullptr, &size), call, who, param_name);
    std::string text(size, '\0');
    if (size > 0)
        check_cl_as(errc::unsupported, query(object, param, size, text.data(), nullptr), call, who, param_name);
    while (!text.empty() && text.back() == '\0') text.pop_back();
    return text;
}

}  // namespace

std::string device_string(cl_device_id device, cl_device_info param, const char* param_name, std::string_view who) {
    return query_string(clGetDeviceInfo, device, param, "clGetDeviceInfo", param_name, who);
}

std::string platform_string(cl_platform_id platform, cl_platform_info param, const char* param_name,
                            std::string_view who) {
    return query_string(clGetPlatformInfo, platform, param, "clGetPlatformInfo", param_name, who);
}

std::vector<std::size_t> device_sizes(cl_device_id device, cl_device_info param, const char* param_name,
                                      std::string_view who) {
    std::size_t bytes = 0;
    check_cl_as(errc::unsupported, clGetDeviceInfo(device, param, 0, nullptr, &bytes), "clGetDeviceInfo", who,
                param_name);
    std::vector<std::size_t> values(bytes / sizeof(std::size_t));
    if (!values.empty())
        check_cl_as(errc::unsupported, clGetDeviceInfo(device, param, bytes, values.data(), nullptr), "clGetDeviceInfo",
                    who, param_name);
    return values;
}

}  // namespace usm::detail::opencl
