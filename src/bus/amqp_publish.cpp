// Publishing with confirms: many in flight, matched to basic.ack/nack/return, with deadlines.
#include "bus/amqp_core.hpp"

#include "bus/topology.hpp"

#include <spdlog/spdlog.h>

namespace intercomm::bus::detail {

void AmqpCore::publish(std::string exchange, Envelope message, Clock::duration timeout,
                       PublishCallback done) {
  OutgoingPublish publish{std::move(exchange), std::move(message), Clock::now() + timeout, std::move(done)};
  post(Command{false, [this, publish = std::move(publish)]() mutable { do_publish(std::move(publish)); }});
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

void AmqpCore::do_publish(OutgoingPublish publish) {
  if (std::this_thread::get_id() != io_thread_.get_id()) {
    publish.done(PublishStatus::failed);  // the I/O thread is gone (the bus stopped)
    return;
  }
  if (!conn_ || broken_ || !connected_) {
    settle_publish(std::move(publish), PublishStatus::failed);
    return;
  }
  if (renew_publish_channel_) {
    if (pending_.empty()) renew_publish_channel();
    if (renew_publish_channel_ || broken_) {  // still in flight on the old channel: this one waits
      publish.not_before = Clock::now() + milliseconds(5);
      waiting_.push_back(std::move(publish));
      return;
    }
  }
  const std::uint64_t seq = next_publish_seq_++;
  ++publish.attempts;
  deadlines_.emplace(publish.deadline, seq);
  const OutgoingPublish& out = pending_.emplace(seq, PendingPublish{std::move(publish), false}).first->second.publish;
  const Envelope& message = out.message;
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
  const int status = amqp_basic_publish(conn_, kPublishChannel, bytes_of(out.exchange),
                                        bytes_of(message.routing_key), 1, 0, &props, bytes_of(message.body));
  if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
}

void AmqpCore::finish(std::map<std::uint64_t, PendingPublish>::iterator it, PublishStatus status) {
  if (status == PublishStatus::confirmed && it->second.returned) status = PublishStatus::unroutable;
  OutgoingPublish publish = std::move(it->second.publish);
  pending_.erase(it);
  settle_publish(std::move(publish), status);
}

void AmqpCore::settle_publish(OutgoingPublish publish, PublishStatus status) {
  const auto now = Clock::now();
  if (status == PublishStatus::unknown) publish.maybe_taken = true;
  const bool again = status == PublishStatus::failed || status == PublishStatus::nacked ||
                     status == PublishStatus::unknown;
  if (again && publish.message.persistent && now < publish.deadline && !stopping()) {
    // A job: the MTA and MDA store by message id, so sending it twice is safe.
    // After a nack (a quorum queue electing a leader) wait a little; after a
    // lost connection, go on the next one at once.
    publish.last = status;
    publish.not_before = now;
    if (status == PublishStatus::nacked) {
      retry_noise_ ^= retry_noise_ << 13, retry_noise_ ^= retry_noise_ >> 7, retry_noise_ ^= retry_noise_ << 17;
      const auto cap = milliseconds(std::min(1000, 50 << std::min(publish.attempts, 5)));
      publish.not_before = now + milliseconds(cap.count() / 2 + static_cast<long>(retry_noise_ % (cap.count() / 2 + 1)));
    }
    waiting_.push_back(std::move(publish));
    return;
  }
  if (status != PublishStatus::confirmed && status != PublishStatus::unroutable && publish.maybe_taken) {
    status = PublishStatus::unknown;  // an earlier attempt may have reached a queue
  }
  publish.done(status);
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
    if (auto it = pending_.find(seq); it != pending_.end()) {
      OutgoingPublish publish = std::move(it->second.publish);
      pending_.erase(it);
      publish.done(PublishStatus::timeout);
    }
  }
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    OutgoingPublish publish = std::move(*it);
    it = waiting_.erase(it);
    publish.done(publish.maybe_taken ? PublishStatus::unknown : publish.last);
  }
}

void AmqpCore::send_waiting() {
  if (waiting_.empty() || !conn_ || broken_ || !connected_) return;
  const auto now = Clock::now();
  std::deque<OutgoingPublish> batch;
  batch.swap(waiting_);
  for (auto& publish : batch) {
    if (publish.not_before > now || broken_) {
      waiting_.push_back(std::move(publish));
    } else {
      do_publish(std::move(publish));  // sent, or kept again
    }
  }
}

void AmqpCore::renew_publish_channel() {
  amqp_channel_close(conn_, kPublishChannel, AMQP_REPLY_SUCCESS);
  if (!rpc_ok(kPublishChannel, "closing the publish channel")) return;
  open_channels_.erase(kPublishChannel);
  if (!open_channel(kPublishChannel)) return;
  amqp_confirm_select(conn_, kPublishChannel);
  if (!rpc_ok(kPublishChannel, "confirm.select")) return;
  next_publish_seq_ = 1;
  renew_publish_channel_ = false;
  spdlog::info("bus: publish channel renewed after a nack");
}

void AmqpCore::abandon_publishes() {
  for (auto& [seq, pending] : pending_) pending.publish.done(PublishStatus::unknown);
  pending_.clear();
  deadlines_.clear();
  std::deque<OutgoingPublish> waiting;
  waiting.swap(waiting_);
  for (auto& publish : waiting) publish.done(publish.maybe_taken ? PublishStatus::unknown : publish.last);
}

}  // namespace intercomm::bus::detail
