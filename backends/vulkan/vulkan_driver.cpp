// backends/vulkan/vulkan_driver.cpp - instance creation, optional validation,
// and the list of physical devices with the reasons usm rejects some.
#include "backends/vulkan/vulkan_driver.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "backends/driver_candidates.hpp"
#include "backends/vulkan/vulkan_backend.hpp"
#include "backends/vulkan/vulkan_debug.hpp"
#include "backends/vulkan/vulkan_device.hpp"

namespace usm::detail {

namespace {

/* --- validation messages ---------------------------------------------------- */

// Process-wide: tests read them after every device and instance is gone.
std::atomic<std::uint64_t> validation_error_count{0};
std::atomic<bool> validation_enabled{false};

VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                                VkDebugUtilsMessageTypeFlagsEXT /*types*/,
                                                const VkDebugUtilsMessengerCallbackDataEXT* data, void* /*user*/) {
    // Called by the layer from whatever thread made the Vulkan call; must not
    // throw back into the driver.
    const char* text = data != nullptr && data->pMessage != nullptr ? data->pMessage : "(no message)";
    try {
        if ((severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT) != 0) {
            validation_error_count.fetch_add(1, std::memory_order_relaxed);
            log(log_level::error, "vulkan validation: ", text);
        } else if ((severity & VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) != 0) {
            log(log_level::warn, "vulkan validation: ", text);
        } else {
            log(log_level::debug, "vulkan: ", text);
        }
    } catch (...) {
        // Logging failed (out of memory): the count above still holds.
    }
    return VK_FALSE;  // never abort the call that triggered the message
}

}  // namespace

std::uint64_t vulkan_validation_errors() noexcept { return validation_error_count.load(); }

bool vulkan_validation_active() noexcept { return validation_enabled.load(); }

std::shared_ptr<driver> load_vulkan_driver(std::string& why_not) { return vulkan::vulkan_driver::load(why_not); }

}  // namespace usm::detail

namespace usm::detail::vulkan {

namespace {

constexpr const char* validation_layer = "VK_LAYER_KHRONOS_validation";

enum class validation_mode { off, core, sync };

validation_mode requested_validation() {
    // Read once per driver load; usm never sets environment variables.
    const char* value = std::getenv("USM_VK_VALIDATION");  // NOLINT(concurrency-mt-unsafe)
    if (value == nullptr || *value == '\0' || std::strcmp(value, "0") == 0) return validation_mode::off;
    if (std::strcmp(value, "sync") == 0) return validation_mode::sync;
    if (std::strcmp(value, "1") != 0)
        log(log_level::warn, "USM_VK_VALIDATION=", value, " is not 0, 1 or sync; using 1");
    return validation_mode::core;
}

bool has_extension(const std::vector<vk::ExtensionProperties>& list, const char* name) {
    return std::any_of(list.begin(), list.end(),
                       [&](const vk::ExtensionProperties& e) { return std::strcmp(e.extensionName, name) == 0; });
}

std::string version_text(std::uint32_t version) {
    return concat(VK_API_VERSION_MAJOR(version), ".", VK_API_VERSION_MINOR(version), ".",
                  VK_API_VERSION_PATCH(version));
}

/// Why usm cannot use `physical`, or "" when it can.
std::string rejection_reason(vk::PhysicalDevice physical) {
    const vk::PhysicalDeviceProperties properties = physical.getProperties();
    if (properties.apiVersion < VK_API_VERSION_1_2)
        return concat("Vulkan ", version_text(properties.apiVersion), " (usm needs 1.2)");

    std::vector<std::string> missing;
    const auto features = physical.getFeatures2<vk::PhysicalDeviceFeatures2, vk::PhysicalDeviceVulkan12Features>();
    const auto& v12 = features.get<vk::PhysicalDeviceVulkan12Features>();
    if (!v12.bufferDeviceAddress) missing.emplace_back("no bufferDeviceAddress");
    if (!v12.timelineSemaphore) missing.emplace_back("no timelineSemaphore");
    const auto families = physical.getQueueFamilyProperties();
    if (std::none_of(families.begin(), families.end(), [](const vk::QueueFamilyProperties& f) {
            return f.queueCount > 0 && (f.queueFlags & vk::QueueFlagBits::eCompute);
        }))
        missing.emplace_back("no compute queue");

    std::string reason;
    for (const std::string& m : missing) reason += (reason.empty() ? "" : "; ") + m;
    return reason;
}

}  // namespace

/* --- debug messenger ---------------------------------------------------------- */

debug_messenger::debug_messenger(vk::Instance instance, const vk::DebugUtilsMessengerCreateInfoEXT& info)
    : m_instance(instance) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance, "vkCreateDebugUtilsMessengerEXT"));
    m_destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT"));
    if (create == nullptr || m_destroy == nullptr)
        throw_error(errc::unsupported, "vkGetInstanceProcAddr found no vkCreateDebugUtilsMessengerEXT");
    const VkDebugUtilsMessengerCreateInfoEXT& raw = info;
    check_vk(vk::Result(create(instance, &raw, nullptr, &m_messenger)), errc::unsupported,
             "vkCreateDebugUtilsMessengerEXT", "the Vulkan instance");
}

debug_messenger::~debug_messenger() {
    if (m_messenger != VK_NULL_HANDLE) m_destroy(m_instance, m_messenger, nullptr);
}

/* --- instance ------------------------------------------------------------------ */

namespace {

/// What vkCreateInstance is asked for.
struct instance_plan {
    std::vector<const char*> layers;
    std::vector<const char*> extensions;
    vk::InstanceCreateFlags flags;
    bool validate = false;         // the validation layer and a messenger
    bool sync_validation = false;  // and its synchronization checks
};

/// Adds the validation layer to `plan` when USM_VK_VALIDATION asks for it
/// and it is installed with VK_EXT_debug_utils (`available`: the instance
/// extensions); otherwise logs why it runs without.
void plan_validation(instance_plan& plan, const std::vector<vk::ExtensionProperties>& available) {
    const validation_mode mode = requested_validation();
    if (mode == validation_mode::off) return;
    const auto layer_list = vk::enumerateInstanceLayerProperties();
    const bool have_layer =
        layer_list.result == vk::Result::eSuccess &&
        std::any_of(layer_list.value.begin(), layer_list.value.end(),
                    [](const vk::LayerProperties& l) { return std::strcmp(l.layerName, validation_layer) == 0; });
    const auto layer_extensions = vk::enumerateInstanceExtensionProperties(std::string(validation_layer));
    const bool have_debug_utils = has_extension(available, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) ||
                                  (layer_extensions.result == vk::Result::eSuccess &&
                                   has_extension(layer_extensions.value, VK_EXT_DEBUG_UTILS_EXTENSION_NAME));
    if (!have_layer || !have_debug_utils) {
        log(log_level::warn, "USM_VK_VALIDATION is set but ",
            have_layer ? "VK_EXT_debug_utils is missing" : concat(validation_layer, " is not installed"),
            "; running without validation");
        return;
    }
    plan.validate = true;
    plan.layers.push_back(validation_layer);
    plan.extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    if (mode == validation_mode::sync && layer_extensions.result == vk::Result::eSuccess &&
        has_extension(layer_extensions.value, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
        plan.extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
        plan.sync_validation = true;
    }
}

/// The layers and extensions of the instance; false (with `why_not`) when
/// the loader cannot say what it offers.
bool plan_instance(instance_plan& plan, std::string& why_not) {
    auto available = vk::enumerateInstanceExtensionProperties();
    if (available.result != vk::Result::eSuccess) {
        why_not = concat("vkEnumerateInstanceExtensionProperties failed: ", result_name(available.result));
        return false;
    }
    // Lets the loader list portability (layered, e.g. MoltenVK) drivers too.
    if (has_extension(available.value, VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME)) {
        plan.extensions.push_back(VK_KHR_PORTABILITY_ENUMERATION_EXTENSION_NAME);
        plan.flags |= vk::InstanceCreateFlagBits::eEnumeratePortabilityKHR;
    }
    plan_validation(plan, available.value);
    return true;
}

/// The messenger settings, for instance creation (through pNext) and the
/// lifetime messenger alike.
vk::DebugUtilsMessengerCreateInfoEXT messenger_settings() {
    return vk::DebugUtilsMessengerCreateInfoEXT(
        {}, vk::DebugUtilsMessageSeverityFlagBitsEXT::eWarning | vk::DebugUtilsMessageSeverityFlagBitsEXT::eError,
        vk::DebugUtilsMessageTypeFlagBitsEXT::eGeneral | vk::DebugUtilsMessageTypeFlagBitsEXT::eValidation |
            vk::DebugUtilsMessageTypeFlagBitsEXT::ePerformance,
        &on_debug_message);
}

}  // namespace

std::shared_ptr<vulkan_driver> vulkan_driver::load(std::string& why_not) {
    // vkEnumerateInstanceVersion exists from loader 1.1; usm needs 1.2.
    const auto loader_version = vk::enumerateInstanceVersion();
    if (loader_version.result != vk::Result::eSuccess || loader_version.value < VK_API_VERSION_1_2) {
        why_not = concat("the Vulkan loader offers ", version_text(loader_version.value), " (usm needs 1.2)");
        return nullptr;
    }
    instance_plan plan;
    if (!plan_instance(plan, why_not)) return nullptr;

    const vk::ApplicationInfo application("usm", 1, "usm", 1, VK_API_VERSION_1_2);
    vk::InstanceCreateInfo create_info(plan.flags, &application, plan.layers, plan.extensions);
    const vk::DebugUtilsMessengerCreateInfoEXT messenger_info = messenger_settings();
    const vk::ValidationFeatureEnableEXT sync_feature = vk::ValidationFeatureEnableEXT::eSynchronizationValidation;
    vk::ValidationFeaturesEXT features(sync_feature, {});
    if (plan.validate) {
        create_info.pNext = &messenger_info;
        if (plan.sync_validation) {
            features.pNext = create_info.pNext;
            create_info.pNext = &features;
        }
    }
    auto created = vk::createInstanceUnique(create_info);
    if (created.result != vk::Result::eSuccess) {
        why_not = concat("vkCreateInstance failed: ", result_name(created.result),
                         created.result == vk::Result::eErrorIncompatibleDriver ? " (no Vulkan driver installed)" : "");
        return nullptr;
    }

    auto self = std::make_shared<vulkan_driver>(private_tag{});
    self->m_instance = std::move(created.value);
    if (plan.validate) {
        self->m_messenger.emplace(*self->m_instance, messenger_info);
        validation_enabled.store(true);
        log(log_level::info, "Vulkan validation layer enabled",
            plan.sync_validation ? " with synchronization checks" : "");
    }
    if (!self->list_devices(why_not)) return nullptr;
    return self;
}

bool vulkan_driver::list_devices(std::string& why_not) {
    auto physical = m_instance->enumeratePhysicalDevices();
    if (physical.result != vk::Result::eSuccess) {
        why_not = concat("vkEnumeratePhysicalDevices failed: ", result_name(physical.result));
        return false;
    }
    if (physical.value.empty()) {
        why_not = "the Vulkan loader found no physical device";
        return false;
    }
    m_physical_devices = std::move(physical.value);
    for (vk::PhysicalDevice device : m_physical_devices) {
        const vk::PhysicalDeviceProperties properties = device.getProperties();
        m_candidates.push_back({std::string(properties.deviceName.data()), rejection_reason(device)});
    }
    return true;
}

std::unique_ptr<device_backend> vulkan_driver::open(std::size_t index) {
    candidate_to_open(m_candidates, index, "vulkan");
    return std::make_unique<vulkan_device>(shared_from_this(), m_physical_devices[index]);
}

}  // namespace usm::detail::vulkan
