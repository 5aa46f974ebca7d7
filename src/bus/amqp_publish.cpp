// Publishing with confirms: many in flight, matched to basic.ack/nack/return, with deadlines.
#include "bus/amqp_core.hpp"

#include "bus/topology.hpp"

#include <spdlog/spdlog.h>

namespace intercomm::bus::detail {

void AmqpCore::publish(std::string exchange, Envelope message, Clock::duration timeout,
                       PublishCallback done) {
  const auto deadline = Clock::now() + timeout;
  post(Command{false, [this, exchange = std::move(exchange), message = std::move(message), deadline,
                       done = std::move(done)]() mutable {
                 do_publish(exchange, message, deadline, std::move(done));
               }});
}

void AmqpCore::publish_reply(Envelope message) {
  post(Command{false, [this, message = std::move(message)] {
                 if (!conn_ || broken_ || !connected_) return;  // its caller will time out
                 amqp_basic_properties_t props{};
                 props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
                 props.content_type = amqp_cstring_bytes("application/json");
                 props.delivery_mode = 1;
                 if (!message.correlation_id.empty()) {
                   props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
                   props.correlation_id = bytes_of(message.correlation_id);
                 }
                 HeaderTable headers(message.headers);
                 if (!message.headers.empty()) {
                   props._flags |= AMQP_BASIC_HEADERS_FLAG;
                   props.headers = headers.table();
                 }
                 const int status =
                     amqp_basic_publish(conn_, kReplyChannel, amqp_empty_bytes, bytes_of(message.routing_key),
                                        0, 0, &props, bytes_of(message.body));
                 if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
               }});
}

void AmqpCore::do_publish(const std::string& exchange, const Envelope& message, Clock::time_point deadline,
                          PublishCallback done) {
  if (!conn_ || broken_ || !connected_) {
    done(PublishStatus::failed);
    return;
  }
  const std::uint64_t seq = next_publish_seq_++;
  const std::string seq_text = std::to_string(seq);
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
  props.content_type = amqp_cstring_bytes("application/json");
  props.delivery_mode = message.persistent ? 2 : 1;
  props.message_id = bytes_of(seq_text);
  if (!message.reply_to.empty()) {
    props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
    props.reply_to = bytes_of(message.reply_to);
  }
  if (!message.correlation_id.empty()) {
    props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = bytes_of(message.correlation_id);
  }
  std::string expiration;
  if (message.expiration) {
    expiration = std::to_string(std::max<long long>(1, message.expiration->count()));
    props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
    props.expiration = bytes_of(expiration);
  }
  HeaderTable headers(message.headers);
  if (!message.headers.empty()) {
    props._flags |= AMQP_BASIC_HEADERS_FLAG;
    props.headers = headers.table();
  }
  pending_.emplace(seq, PendingPublish{std::move(done), false});
  deadlines_.emplace(deadline, seq);
  const int status = amqp_basic_publish(conn_, kPublishChannel, bytes_of(exchange),
                                        bytes_of(message.routing_key), 1, 0, &props, bytes_of(message.body));
  if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
}

void AmqpCore::finish(std::map<std::uint64_t, PendingPublish>::iterator it, PublishStatus status) {
  auto done = std::move(it->second.done);
  if (status == PublishStatus::confirmed && it->second.returned) status = PublishStatus::unroutable;
  pending_.erase(it);
  done(status);
}

void AmqpCore::confirm(std::uint64_t tag, bool multiple, PublishStatus status) {
  if (multiple) {
    while (!pending_.empty() && pending_.begin()->first <= tag) finish(pending_.begin(), status);
  } else if (auto it = pending_.find(tag); it != pending_.end()) {
    finish(it, status);
  }
}

void AmqpCore::expire_publishes() {
  const auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const auto seq = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    if (auto it = pending_.find(seq); it != pending_.end()) finish(it, PublishStatus::timeout);
  }
}

}  // namespace intercomm::bus::detail
