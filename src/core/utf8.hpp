// UTF-8 well-formedness (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
#pragma once

#include <string>
#include <string_view>

namespace intercomm::core {

bool is_valid_utf8(std::string_view text) noexcept;

// `text` with each byte that starts no well-formed sequence replaced by U+FFFD;
// for text that must become JSON whatever it holds (log lines).
std::string replace_invalid_utf8(std::string_view text);

}  // namespace intercomm::core
