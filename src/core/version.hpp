// The version string, from CMake's project().
#pragma once

#include <string_view>

namespace intercomm::core {

std::string_view version() noexcept;

}  // namespace intercomm::core
