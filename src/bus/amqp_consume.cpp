// Consumers, the reply queue and its bindings, deliveries and their acks, incoming frames.
#include "bus/amqp_core.hpp"

#include "bus/topology.hpp"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <charconv>

namespace intercomm::bus::detail {

Result<std::uint64_t> AmqpCore::add_consumer(std::string queue, std::uint16_t prefetch,
                                             DeliveryHandler handler) {
  return call<std::uint64_t>(true,
                             [this, queue = std::move(queue), prefetch,
                              handler = std::move(handler)]() mutable -> Result<std::uint64_t> {
                               const std::uint64_t id = next_consumer_id_++;
                               auto& registration = consumers_[id];
                               registration.queue = std::move(queue);
                               registration.prefetch = prefetch;
                               registration.handler = std::move(handler);
                               if (auto subscribed = subscribe(id, registration); !subscribed) {
                                 consumers_.erase(id);
                                 return subscribed.error();
                               }
                               return id;
                             });
}

void AmqpCore::cancel_consumer(std::uint64_t id) {
  auto cancel = [this, id] {
    auto found = consumers_.find(id);
    if (found == consumers_.end()) return;
    if (conn_ && found->second.channel != 0) {
      send_acks();  // settled before the cancel: acked, not put back by the close
      open_channels_.erase(found->second.channel);
      channel_to_consumer_.erase(found->second.channel);
      acks_.erase(found->second.channel);
      // Closing the channel puts its unacked deliveries back in the queue.
      amqp_channel_close(conn_, found->second.channel, AMQP_REPLY_SUCCESS);
    }
    // Kept until the loop's next turn: this may run inside its own handler.
    retired_.push_back(std::move(found->second));
    consumers_.erase(found);
  };
  run_on_io_thread(cancel);
}

// basic.cancel: no new deliveries; the channel stays open so deliveries in
// hand can still be acked.
void AmqpCore::pause_consumer(std::uint64_t id) {
  auto pause = [this, id] {
    auto found = consumers_.find(id);
    if (found == consumers_.end() || found->second.paused) return;
    found->second.paused = true;
    if (conn_ && found->second.channel != 0) {
      amqp_basic_cancel(conn_, found->second.channel, bytes_of(found->second.consumer_tag));
      (void)rpc_result(found->second.channel, "basic.cancel");
    }
  };
  run_on_io_thread(pause);
}

void AmqpCore::resume_consumer(std::uint64_t id) {
  post(Command{false, [this, id] {
                 auto found = consumers_.find(id);
                 if (found == consumers_.end() || !found->second.paused) return;
                 found->second.paused = false;
                 if (!conn_ || !connected_) return;  // subscribed at the next connect
                 auto& registration = found->second;
                 if (registration.channel == 0 || !open_channels_.contains(registration.channel)) {
                   (void)subscribe(id, registration);
                   return;
                 }
                 auto* consumed =
                     amqp_basic_consume(conn_, registration.channel, bytes_of(registration.queue),
                                        amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
                 if (rpc_result(registration.channel, "basic.consume " + registration.queue)) {
                   registration.consumer_tag = string_of(consumed->consumer_tag);
                 }
               }});
}

Result<void> AmqpCore::open_reply_queue(std::function<void(Envelope)> on_reply) {
  return call<void>(true, [this, on_reply = std::move(on_reply)]() mutable -> Result<void> {
    if (reply_handler_) return Error::of(ErrorCode::conflict, "reply queue: already open");
    reply_handler_ = std::move(on_reply);
    return subscribe_reply_queue();
  });
}

void AmqpCore::bind_reply_queue(std::string exchange, std::string key, bool bind,
                                std::function<void(Result<void>)> done) {
  post(Command{false,
               [this, exchange = std::move(exchange), key = std::move(key), bind, done = std::move(done)] {
                 const auto binding = std::make_pair(exchange, key);
                 if (bind) {
                   reply_bindings_.insert(binding);
                 } else {
                   reply_bindings_.erase(binding);
                 }
                 std::string queue;
                 {
                   std::lock_guard lock(mu_);
                   queue = reply_queue_;
                 }
                 // Not connected: applied with the reply queue on connect.
                 Result<void> result;
                 if (conn_ && connected_ && !queue.empty())
                   result = apply_reply_binding(queue, exchange, key, bind);
                 if (done) done(std::move(result));
               }});
}

// An ack waits for the end of the loop's turn (send_acks), to go with the
// others settled meanwhile; a reject goes at once.
void AmqpCore::settle(std::uint64_t tag, std::uint64_t generation, bool ack, bool requeue) {
  post(Command{false, [this, tag, generation, ack, requeue] {
                 const auto channel = static_cast<amqp_channel_t>(generation & 0xFFFF);
                 if (!conn_ || (generation >> 16) != generation_ || !open_channels_.contains(channel)) return;
                 auto& acks = acks_[channel];
                 if (ack) {
                   acks.acked.push_back(tag);
                   return;
                 }
                 acks.in_hand.erase(tag);
                 const int status = amqp_basic_reject(conn_, channel, tag, requeue ? 1 : 0);
                 if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
               }});
}

void AmqpCore::send_acks() {
  for (auto& [channel, acks] : acks_) {
    if (acks.acked.empty() || broken_) continue;
    std::sort(acks.acked.begin(), acks.acked.end());
    // The acked deliveries that are the oldest in hand: one ack with `multiple`.
    auto oldest = acks.in_hand.begin();
    std::size_t covered = 0;
    while (oldest != acks.in_hand.end() && covered < acks.acked.size() && *oldest == acks.acked[covered]) {
      ++oldest;
      ++covered;
    }
    int status = AMQP_STATUS_OK;
    if (covered > 0) {
      status = amqp_basic_ack(conn_, channel, acks.acked[covered - 1], covered > 1 ? 1 : 0);
      acks.in_hand.erase(acks.in_hand.begin(), oldest);
    }
    // Behind a delivery still being handled: each on its own, now (held back,
    // they would shrink the prefetch window while it runs).
    for (std::size_t i = covered; i < acks.acked.size() && status == AMQP_STATUS_OK; ++i) {
      status = amqp_basic_ack(conn_, channel, acks.acked[i], 0);
      acks.in_hand.erase(acks.acked[i]);
    }
    acks.acked.clear();
    if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
  }
}

Result<void> AmqpCore::subscribe_reply_queue() {
  auto* declared = amqp_queue_declare(conn_, kReplyQueueChannel, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
  if (auto ok = rpc_result(kReplyQueueChannel, "queue.declare reply queue"); !ok) return ok;
  std::string name = string_of(declared->queue);
  amqp_basic_consume(conn_, kReplyQueueChannel, bytes_of(name), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
  if (auto ok = rpc_result(kReplyQueueChannel, "basic.consume reply queue"); !ok) return ok;
  {
    std::lock_guard lock(mu_);
    reply_queue_ = name;
  }
  for (const auto& [exchange, key] : reply_bindings_) {
    if (auto ok = apply_reply_binding(name, exchange, key, true); !ok) return ok;
  }
  return {};
}

Result<void> AmqpCore::apply_reply_binding(const std::string& queue, const std::string& exchange,
                                           const std::string& key, bool bind) {
  if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
  if (bind) {
    amqp_queue_bind(conn_, kDeclareChannel, bytes_of(queue), bytes_of(exchange), bytes_of(key),
                    amqp_empty_table);
  } else {
    amqp_queue_unbind(conn_, kDeclareChannel, bytes_of(queue), bytes_of(exchange), bytes_of(key),
                      amqp_empty_table);
  }
  return rpc_result(kDeclareChannel, (bind ? "queue.bind " : "queue.unbind ") + key);
}

Result<void> AmqpCore::subscribe(std::uint64_t id, ConsumerRegistration& registration) {
  if (!conn_) return {};  // subscribed on connect
  const amqp_channel_t channel = next_channel_++;
  amqp_channel_open(conn_, channel);
  if (auto ok = rpc_result(channel, "channel.open"); !ok) return ok;
  open_channels_.insert(channel);
  if (registration.prefetch > 0) {
    amqp_basic_qos(conn_, channel, 0, registration.prefetch, 0);
    if (auto ok = rpc_result(channel, "basic.qos"); !ok) return ok;
  }
  auto* consumed = amqp_basic_consume(conn_, channel, bytes_of(registration.queue), amqp_empty_bytes, 0, 0, 0,
                                      amqp_empty_table);
  if (auto ok = rpc_result(channel, "basic.consume " + registration.queue); !ok) return ok;
  registration.consumer_tag = string_of(consumed->consumer_tag);
  registration.channel = channel;
  channel_to_consumer_[channel] = id;
  return {};
}

void AmqpCore::read_frames() {
  timeval zero{0, 0};
  for (int i = 0; i < kFramesPerTurn && !broken_; ++i) {
    amqp_frame_t frame;
    const int status = amqp_simple_wait_frame_noblock(conn_, &frame, &zero);
    if (status == AMQP_STATUS_TIMEOUT) break;
    if (status != AMQP_STATUS_OK) {
      fail_connection(amqp_error_string2(status));
      break;
    }
    handle_frame(frame);
  }
  if (!broken_) amqp_maybe_release_buffers(conn_);
}

void AmqpCore::handle_frame(const amqp_frame_t& frame) {
  if (frame.frame_type != AMQP_FRAME_METHOD) return;
  const amqp_channel_t channel = frame.channel;
  switch (frame.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
      if (channel != kPublishChannel) return;
      const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
      confirm(ack->delivery_tag, ack->multiple != 0, PublishStatus::confirmed);
      return;
    }
    case AMQP_BASIC_NACK_METHOD: {
      if (channel != kPublishChannel) return;
      const auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
      renew_publish_channel_ = true;
      confirm(nack->delivery_tag, nack->multiple != 0, PublishStatus::nacked);
      return;
    }
    case AMQP_BASIC_RETURN_METHOD: {
      amqp_message_t message;
      if (amqp_read_message(conn_, channel, &message, 0).reply_type != AMQP_RESPONSE_NORMAL) {
        fail_connection("reading a returned message");
        return;
      }
      std::uint64_t seq = 0;
      const std::string id = string_of(message.properties.message_id);
      std::from_chars(id.data(), id.data() + id.size(), seq);
      if (auto it = pending_.find(seq); it != pending_.end()) it->second.returned = true;
      amqp_destroy_message(&message);
      return;
    }
    case AMQP_BASIC_DELIVER_METHOD: {
      const auto* deliver = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded);
      const std::uint64_t tag = deliver->delivery_tag;
      const bool redelivered = deliver->redelivered != 0;
      std::string routing_key = string_of(deliver->routing_key);
      amqp_message_t message;
      if (amqp_read_message(conn_, channel, &message, 0).reply_type != AMQP_RESPONSE_NORMAL) {
        fail_connection("reading a delivered message");
        return;
      }
      std::uint32_t delivery_count = 0;
      Envelope envelope = envelope_of(message, std::move(routing_key), redelivered, delivery_count);
      amqp_destroy_message(&message);
      deliver_to_consumer(channel, tag, redelivered, delivery_count, std::move(envelope));
      return;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
      const auto* close = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
      fail_connection(
          fmt::format("channel {} closed by the broker: {}", channel, string_of(close->reply_text)));
      return;
    }
    case AMQP_CONNECTION_CLOSE_METHOD: {
      const auto* close = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
      fail_connection(fmt::format("closed by the broker: {}", string_of(close->reply_text)));
      return;
    }
    case AMQP_BASIC_CANCEL_METHOD:
      fail_connection("consumer cancelled by the broker (queue deleted?)");
      return;
    default: return;
  }
}

void AmqpCore::deliver_to_consumer(amqp_channel_t channel, std::uint64_t tag, bool redelivered,
                                   std::uint32_t delivery_count, Envelope envelope) {
  if (channel == kReplyQueueChannel) {
    if (reply_handler_) reply_handler_(std::move(envelope));
    return;
  }
  auto consumer_id = channel_to_consumer_.find(channel);
  if (consumer_id == channel_to_consumer_.end()) return;
  auto registration = consumers_.find(consumer_id->second);
  if (registration == consumers_.end()) return;
  acks_[channel].in_hand.insert(tag);
  registration->second.handler(std::make_unique<Delivery>(std::move(envelope), redelivered, delivery_count,
                                                          tag, (generation_ << 16) | channel,
                                                          shared_from_this()));
}

}  // namespace intercomm::bus::detail
