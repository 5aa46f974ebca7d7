// UTF-8 validation after the table in RFC 3629 section 4.
#include "core/utf8.hpp"

#include <cstdint>

namespace intercomm::core {
namespace {

// The length of the well-formed sequence starting at p, or 0 when there is none.
std::ptrdiff_t sequence_length(const std::uint8_t* p, const std::uint8_t* end) noexcept {
  const std::uint8_t lead = *p;
  if (lead < 0x80) return 1;
  std::ptrdiff_t length = 0;
  std::uint8_t second_min = 0x80;
  std::uint8_t second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // overlong
    if (lead == 0xED) second_max = 0x9F;  // UTF-16 surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // overlong
    if (lead == 0xF4) second_max = 0x8F;  // past U+10FFFF
  } else {
    return 0;  // continuation byte as lead, C0/C1 overlong, F5..FF
  }
  if (end - p < length) return 0;
  if (p[1] < second_min || p[1] > second_max) return 0;
  for (std::ptrdiff_t i = 2; i < length; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
  }
  return length;
}

}  // namespace

bool is_valid_utf8(std::string_view text) noexcept {
  const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    const auto length = sequence_length(p, end);
    if (length == 0) return false;
    p += length;
  }
  return true;
}

std::string replace_invalid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto* begin = reinterpret_cast<const std::uint8_t*>(text.data());
  const auto* p = begin;
  const auto* end = p + text.size();
  while (p < end) {
    const auto length = sequence_length(p, end);
    if (length == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      ++p;
    } else {
      out.append(text.substr(static_cast<std::size_t>(p - begin), static_cast<std::size_t>(length)));
      p += length;
    }
  }
  return out;
}

}  // namespace intercomm::core
