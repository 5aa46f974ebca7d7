// Reading AMQP properties into an Envelope.
#include "bus/amqp_core.hpp"

#include "bus/topology.hpp"

#include <charconv>

namespace intercomm::bus::detail {
namespace {

std::optional<std::int64_t> integer_of(const amqp_field_value_t& value) {
  switch (value.kind) {
    case AMQP_FIELD_KIND_I8: return value.value.i8;
    case AMQP_FIELD_KIND_U8: return value.value.u8;
    case AMQP_FIELD_KIND_I16: return value.value.i16;
    case AMQP_FIELD_KIND_U16: return value.value.u16;
    case AMQP_FIELD_KIND_I32: return value.value.i32;
    case AMQP_FIELD_KIND_U32: return value.value.u32;
    case AMQP_FIELD_KIND_I64: return value.value.i64;
    case AMQP_FIELD_KIND_U64: return static_cast<std::int64_t>(value.value.u64);
    default: return std::nullopt;
  }
}

}  // namespace

// The envelope of a received message; delivery count from x-delivery-count
// (quorum queues), else 1 for a redelivery.
Envelope envelope_of(const amqp_message_t& message, std::string routing_key, bool redelivered,
                     std::uint32_t& delivery_count) {
  Envelope envelope;
  const auto& p = message.properties;
  envelope.routing_key = std::move(routing_key);
  envelope.body = string_of(message.body);
  if (p._flags & AMQP_BASIC_REPLY_TO_FLAG) envelope.reply_to = string_of(p.reply_to);
  if (p._flags & AMQP_BASIC_CORRELATION_ID_FLAG) envelope.correlation_id = string_of(p.correlation_id);
  if (p._flags & AMQP_BASIC_EXPIRATION_FLAG) {
    const std::string text = string_of(p.expiration);
    long long ms = 0;
    if (std::from_chars(text.data(), text.data() + text.size(), ms).ec == std::errc()) {
      envelope.expiration = milliseconds(ms);
    }
  }
  envelope.persistent = (p._flags & AMQP_BASIC_DELIVERY_MODE_FLAG) && p.delivery_mode == 2;
  delivery_count = redelivered ? 1 : 0;
  if (p._flags & AMQP_BASIC_HEADERS_FLAG) {
    for (int i = 0; i < p.headers.num_entries; ++i) {
      const auto& entry = p.headers.entries[i];
      const std::string key = string_of(entry.key);
      if (entry.value.kind == AMQP_FIELD_KIND_UTF8 || entry.value.kind == AMQP_FIELD_KIND_BYTES) {
        envelope.headers[key] = string_of(entry.value.value.bytes);
      } else if (key == "x-death" && entry.value.kind == AMQP_FIELD_KIND_ARRAY &&
                 entry.value.value.array.num_entries > 0 &&
                 entry.value.value.array.entries[0].kind == AMQP_FIELD_KIND_TABLE) {
        // The broker's record of the first death: when (a timestamp, seconds).
        const auto& death = entry.value.value.array.entries[0].value.table;
        for (int j = 0; j < death.num_entries; ++j) {
          if (string_of(death.entries[j].key) == "time" &&
              death.entries[j].value.kind == AMQP_FIELD_KIND_TIMESTAMP) {
            envelope.headers.try_emplace(kFirstDeathTimeHeader,
                                         std::to_string(death.entries[j].value.value.u64));
          }
        }
      } else if (auto number = integer_of(entry.value)) {
        envelope.headers[key] = std::to_string(*number);
        if (key == "x-delivery-count") delivery_count = static_cast<std::uint32_t>(*number);
      }
    }
  }
  return envelope;
}

}  // namespace intercomm::bus::detail
