// Message validation and JSON mapping.
#include "core/message.hpp"

#include "core/utf8.hpp"

#include <boost/json/string.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <array>
#include <ctime>

namespace intercomm::core {
namespace json = boost::json;

namespace {

constexpr std::array<std::string_view, 5> kFields = {"message_id", "sender", "receiver", "body",
                                                     "created_at"};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_upper(char c) {
  return c >= 'A' && c <= 'Z';
}
bool is_lower(char c) {
  return c >= 'a' && c <= 'z';
}

int digits(std::string_view text, std::size_t pos, std::size_t count) {
  int value = 0;
  for (std::size_t i = pos; i < pos + count; ++i) value = value * 10 + (text[i] - '0');
  return value;
}

bool is_leap(int year) {
  return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int days_in_month(int year, int month) {
  constexpr std::array<int, 12> kDays = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && is_leap(year) ? 29 : kDays[static_cast<std::size_t>(month - 1)];
}

}  // namespace

std::string conversation_key(std::string_view a, std::string_view b) {
  if (b < a) std::swap(a, b);
  std::string key;
  key.reserve(a.size() + b.size() + 1);
  key.append(a).append(1, ' ').append(b);  // a space is never part of a user id
  return key;
}

bool is_user_id(std::string_view value) noexcept {
  if (value.empty() || value.size() > kMaxUserIdLength) return false;
  return std::all_of(value.begin(), value.end(), [](char c) {
    return is_digit(c) || is_upper(c) || is_lower(c) || c == '_' || c == '.' || c == '-';
  });
}

bool is_message_id(std::string_view value) noexcept {
  if (value.size() < kMinMessageIdLength || value.size() > kMaxMessageIdLength) return false;
  return std::all_of(value.begin(), value.end(), [](char c) { return is_digit(c) || is_upper(c); });
}

bool is_visible_ascii(std::string_view value, std::size_t max) noexcept {
  return !value.empty() && value.size() <= max &&
         std::all_of(value.begin(), value.end(), [](char c) { return c >= 0x21 && c <= 0x7e; });
}

bool is_rfc3339_utc(std::string_view value) noexcept {
  // YYYY-MM-DDTHH:MM:SS then optional .fraction then Z
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (value.size() < kShape.size() + 1 || value.back() != 'Z') return false;
  for (std::size_t i = 0; i < kShape.size(); ++i) {
    if (kShape[i] == 'd' ? !is_digit(value[i]) : value[i] != kShape[i]) return false;
  }
  std::string_view rest = value.substr(kShape.size(), value.size() - kShape.size() - 1);
  if (!rest.empty()) {
    if (rest.size() < 2 || rest.size() > 10 || rest[0] != '.') return false;
    if (!std::all_of(rest.begin() + 1, rest.end(), is_digit)) return false;
  }
  const int year = digits(value, 0, 4);
  const int month = digits(value, 5, 2);
  const int day = digits(value, 8, 2);
  const int hour = digits(value, 11, 2);
  const int minute = digits(value, 14, 2);
  const int second = digits(value, 17, 2);
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return false;
  return hour <= 23 && minute <= 59 && second <= 60;  // 60: leap second
}

std::string format_rfc3339(std::chrono::system_clock::time_point time) {
  using namespace std::chrono;
  const auto millis = duration_cast<milliseconds>(time.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", utc.tm_year + 1900, utc.tm_mon + 1,
                     utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis % 1000);
}

Result<void> validate(const Message& message, const MessageLimits& limits, MessageShape shape) {
  const bool stored = shape == MessageShape::stored;
  if (stored || !message.message_id.empty()) {
    if (!is_message_id(message.message_id)) {
      return invalid_field(
          "message_id", fmt::format("must be {}-{} of [0-9A-Z]", kMinMessageIdLength, kMaxMessageIdLength));
    }
  }
  if (!is_user_id(message.sender)) return invalid_field("sender", "must be 1-64 of [A-Za-z0-9_.-]");
  if (!is_user_id(message.receiver)) return invalid_field("receiver", "must be 1-64 of [A-Za-z0-9_.-]");
  if (!message.retracted_at.empty()) {
    if (!stored) return invalid_field("retracted_at", "unknown field (a new message cannot be retracted)");
    if (!is_rfc3339_utc(message.retracted_at)) return invalid_field("retracted_at", "must be an RFC 3339 UTC time");
    if (!message.body.empty()) return invalid_field("body", "must be empty in a retracted message");
  } else if (message.body.empty() || message.body.size() > limits.max_body_bytes) {
    return invalid_field("body", fmt::format("must be 1 to {} bytes", limits.max_body_bytes));
  }
  if (!is_valid_utf8(message.body)) return invalid_field("body", "must be valid UTF-8 text");
  if (stored || !message.created_at.empty()) {
    if (!is_rfc3339_utc(message.created_at)) {
      return invalid_field("created_at", "must be an RFC 3339 UTC time like 2026-01-31T12:00:00.000Z");
    }
  }
  return {};
}

Result<Message> message_from_json(const json::value& value, const MessageLimits& limits, MessageShape shape) {
  const auto* object = value.if_object();
  if (object == nullptr) return invalid_field("message", "must be an object");

  for (const auto& member : *object) {
    const std::string_view key = member.key();
    const bool known = std::find(kFields.begin(), kFields.end(), key) != kFields.end() ||
                       (key == "retracted_at" && shape == MessageShape::stored);
    if (!known) {
      return invalid_field(key, "unknown field (allowed: message_id, sender, receiver, body, created_at)");
    }
  }

  Message message;
  const auto read = [&](std::string_view field, std::string& out) -> Result<void> {
    const auto* found = object->if_contains(field);
    if (found == nullptr) return {};
    if (!found->is_string()) return invalid_field(field, "must be a string");
    out = json::string_view(found->get_string());
    return {};
  };
  for (auto [field, out] : {std::pair{kFields[0], &message.message_id},
                            {kFields[1], &message.sender},
                            {kFields[2], &message.receiver},
                            {kFields[3], &message.body},
                            {kFields[4], &message.created_at},
                            {std::string_view("retracted_at"), &message.retracted_at}}) {
    if (auto ok = read(field, *out); !ok) return ok.error();
  }
  if (object->contains("message_id") && message.message_id.empty()) {
    return invalid_field("message_id", "must not be empty; leave it out to have one generated");
  }
  if (object->contains("created_at") && message.created_at.empty()) {
    return invalid_field("created_at", "must not be empty; leave it out to have it set");
  }
  if (auto ok = validate(message, limits, shape); !ok) return ok.error();
  return message;
}

json::object to_json(const Message& message) {
  json::object object;
  if (!message.message_id.empty()) object["message_id"] = message.message_id;
  object["sender"] = message.sender;
  object["receiver"] = message.receiver;
  object["body"] = message.body;
  if (!message.created_at.empty()) object["created_at"] = message.created_at;
  if (!message.retracted_at.empty()) object["retracted_at"] = message.retracted_at;
  return object;
}

}  // namespace intercomm::core
