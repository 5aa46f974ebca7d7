// Internal to src/bus: the RabbitMQ backend's pieces, shared by its files.
// One AmqpCore per connection; every member that touches the rabbitmq-c
// connection runs on its I/O thread (rabbitmq-c is not thread-safe):
//   amqp_connection.cpp  the I/O loop, connecting (and failing over), commands
//   amqp_topology.cpp    exchanges, queues and bindings, declared again on reconnect
//   amqp_publish.cpp     publishes, confirms, returns, deadlines
//   amqp_consume.cpp     consumers, the reply queue, deliveries, acks, incoming frames
//   amqp.cpp             the Bus interface over it
#pragma once

#include "bus/amqp.hpp"

#include <amqp.h>
#include <sys/eventfd.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace intercomm::bus::detail {

using core::Error;
using core::ErrorCode;
using core::Result;
using std::chrono::milliseconds;

constexpr amqp_channel_t kReplyQueueChannel = 1;  // the reply queue and its no-ack consumer
constexpr amqp_channel_t kDeclareChannel = 2;     // declarations: a failure closes only this channel
constexpr amqp_channel_t kReplyChannel = 3;       // RPC replies: no confirms, not mandatory
constexpr amqp_channel_t kPublishChannel = 4;     // publishes with confirms; renewed after a nack
constexpr amqp_channel_t kFirstConsumerChannel = 10;
constexpr int kFramesPerTurn = 512;

inline amqp_bytes_t bytes_of(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

inline std::string string_of(amqp_bytes_t bytes) {
  return bytes.len == 0 ? std::string() : std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

inline timeval timeval_of(std::chrono::milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

inline core::Error unavailable(std::string message) {
  return core::Error::of(core::ErrorCode::internal_error, std::move(message));
}

// A headers table whose entries point into `headers` (which must outlive it).
class HeaderTable {
 public:
  explicit HeaderTable(const std::map<std::string, std::string>& headers) {
    entries_.reserve(headers.size());
    for (const auto& [key, value] : headers) {
      amqp_table_entry_t entry{};
      entry.key = bytes_of(key);
      entry.value.kind = AMQP_FIELD_KIND_UTF8;
      entry.value.value.bytes = bytes_of(value);
      entries_.push_back(entry);
    }
  }
  amqp_table_t table() { return amqp_table_t{static_cast<int>(entries_.size()), entries_.data()}; }

 private:
  std::vector<amqp_table_entry_t> entries_;
};

// The envelope of a received message; delivery count from x-delivery-count
// (quorum queues), else 1 for a redelivery.
Envelope envelope_of(const amqp_message_t& message, std::string routing_key, bool redelivered,
                     std::uint32_t& delivery_count);

// A publish until its outcome is known or its deadline passes.
struct OutgoingPublish {
  std::string exchange;
  Envelope message;
  Clock::time_point deadline;
  PublishCallback done;
  bool maybe_taken = false;           // sent on a connection lost before its confirm
  PublishStatus last = PublishStatus::failed;
  int attempts = 0;
  Clock::time_point not_before{};     // a retry after a nack waits till then
};

struct PendingPublish {
  OutgoingPublish publish;
  bool returned = false;
};

struct ConsumerRegistration {
  std::string queue;
  std::uint16_t prefetch = 0;
  DeliveryHandler handler;
  amqp_channel_t channel = 0;  // 0: not subscribed on the current connection
  std::string consumer_tag;
  bool paused = false;  // not re-subscribed after a reconnect
};

struct Command {
  bool needs_connection = false;  // deferred until connected, instead of failing
  std::function<void()> run;
};

// One AMQP connection and the I/O thread that owns it. Public members may be
// called from any thread (they post to the I/O thread); private ones run on it.
class AmqpCore : public AckSink, public std::enable_shared_from_this<AmqpCore> {
 public:
  explicit AmqpCore(AmqpOptions options) : options_(std::move(options)), wake_fd_(eventfd(0, EFD_CLOEXEC)) {}
  ~AmqpCore() override;

  // --- amqp_connection.cpp ---
  void start();
  void stop();
  bool connected() const { return connected_.load(); }
  void on_reconnected(std::function<void()> callback) {
    std::lock_guard lock(mu_);
    on_reconnected_ = std::move(callback);
  }
  void post(Command command);
  // Runs `fn` on the I/O thread and waits for its result, up to the rpc timeout.
  template <class T>
  Result<T> call(bool needs_connection, std::function<Result<T>()> fn) {
    if (std::this_thread::get_id() == io_thread_.get_id()) {
      return Error::of(ErrorCode::internal_error, "bus: blocking call from a bus thread");
    }
    auto promise = std::make_shared<std::promise<Result<T>>>();
    auto future = promise->get_future();
    post(Command{needs_connection, [promise, fn = std::move(fn)] { promise->set_value(fn()); }});
    if (future.wait_for(options_.rpc_timeout) != std::future_status::ready) {
      return unavailable("bus: broker not reachable in time");
    }
    return future.get();
  }
  // Runs `fn` on the I/O thread: inline when already there (from a handler),
  // else posted, waiting up to the rpc timeout for it to have run.
  void run_on_io_thread(const std::function<void()>& fn);

  // --- amqp_topology.cpp ---
  Result<void> declare_queue(QueueSpec spec);
  Result<void> declare_exchange(ExchangeSpec spec);
  Result<void> unbind(std::string source, std::string destination, std::string key, bool to_exchange);
  // queue.declare passive: the ready messages of `queue` (an error when it is missing).
  Result<std::uint64_t> queue_depth(std::string queue);

  // --- amqp_publish.cpp ---
  void publish(std::string exchange, Envelope message, Clock::duration timeout, PublishCallback done);
  void publish_reply(Envelope message);

  // --- amqp_consume.cpp ---
  Result<std::uint64_t> add_consumer(std::string queue, std::uint16_t prefetch, DeliveryHandler handler);
  void cancel_consumer(std::uint64_t id);
  // basic.cancel: no new deliveries; the channel stays open so deliveries in
  // hand can still be acked.
  void pause_consumer(std::uint64_t id);
  // basic.consume again on the consumer's channel (or at the next connect).
  void resume_consumer(std::uint64_t id);
  Result<void> open_reply_queue(std::function<void(Envelope)> on_reply);
  std::string reply_queue() const {
    std::lock_guard lock(mu_);
    return reply_queue_;
  }
  void bind_reply_queue(std::string exchange, std::string key, bool bind,
                        std::function<void(Result<void>)> done);
  void settle(std::uint64_t tag, std::uint64_t generation, bool ack, bool requeue) override;

 private:
  // --- amqp_connection.cpp ---
  void wake();
  void loop();
  bool stopping() const;
  bool has_commands() const;
  void drain_wake();
  void wait_for_wake(milliseconds timeout);
  milliseconds poll_timeout() const;
  void run_commands();
  void run_deferred();
  // Connects to the first node of options_.urls that answers; false when none did.
  bool connect();
  bool connect_to(std::string url);
  void log_once(const std::string& message);
  void fail_connection(std::string_view reason);
  void teardown();
  bool open_channel(amqp_channel_t channel);
  // Checks the reply of the last synchronous method. A channel-level error
  // closes only that channel (acknowledged here); a connection-level or
  // library error breaks the connection.
  Result<void> rpc_result(amqp_channel_t channel, std::string_view what);
  bool rpc_ok(amqp_channel_t channel, std::string_view what);

  // --- amqp_topology.cpp ---
  // The declare channel after a channel error is reopened for the next declaration.
  bool ensure_declare_channel();
  bool declare_base_topology();
  Result<void> do_declare_exchange(const ExchangeSpec& spec);
  Result<void> do_declare_queue(const QueueSpec& spec);

  // --- amqp_publish.cpp ---
  void do_publish(OutgoingPublish publish);
  void finish(std::map<std::uint64_t, PendingPublish>::iterator it, PublishStatus status);
  // Ends `publish` with `status`, or (a job before its deadline, after a
  // nack or a lost connection) keeps it to be sent again.
  void settle_publish(OutgoingPublish publish, PublishStatus status);
  void confirm(std::uint64_t tag, bool multiple, PublishStatus status);
  void expire_publishes();
  // Sends the kept publishes whose time has come (connected only).
  void send_waiting();
  // Ends every publish in flight or kept: at exit.
  void abandon_publishes();
  // A new publish channel in place of one that saw a nack (run with nothing
  // in flight): RabbitMQ 3.10 keeps a channel's view of a quorum queue's
  // leader, and a channel opened while a node was dying went on being nacked
  // by queues that had long elected a new leader on a live node.
  void renew_publish_channel();

  // --- amqp_consume.cpp ---
  Result<void> subscribe_reply_queue();
  Result<void> apply_reply_binding(const std::string& queue, const std::string& exchange,
                                   const std::string& key, bool bind);
  Result<void> subscribe(std::uint64_t id, ConsumerRegistration& registration);
  void read_frames();
  void handle_frame(const amqp_frame_t& frame);
  void deliver_to_consumer(amqp_channel_t channel, std::uint64_t tag, bool redelivered,
                           std::uint32_t delivery_count, Envelope envelope);
  // Sends the acks settled since the last call: the ones that, with every
  // delivery before them on their channel, are all that channel has in hand
  // as one basic.ack with `multiple`; the rest one by one.
  void send_acks();

  AmqpOptions options_;
  int wake_fd_;
  std::thread io_thread_;
  mutable std::mutex mu_;  // guards commands_, stopping_, exited_, reply_queue_, on_reconnected_
  std::function<void()> on_reconnected_;
  std::deque<Command> commands_;
  bool stopping_ = false;
  bool exited_ = false;
  std::string reply_queue_;
  std::atomic<bool> connected_{false};

  // I/O thread only:
  amqp_connection_state_t conn_ = nullptr;
  bool broken_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t next_publish_seq_ = 1;
  amqp_channel_t next_channel_ = kFirstConsumerChannel;
  std::size_t next_url_ = 0;  // the node to try first
  bool was_connected_ = false;  // a connect is a reconnect
  std::map<std::uint64_t, PendingPublish> pending_;
  std::multimap<Clock::time_point, std::uint64_t> deadlines_;
  std::deque<OutgoingPublish> waiting_;  // jobs kept for a connection or a retry
  bool renew_publish_channel_ = false;   // a nack came: renew once nothing is in flight
  std::uint64_t retry_noise_ = 0x9E3779B97F4A7C15ULL;  // jitter of the retries
  std::deque<Command> deferred_;
  std::vector<ExchangeSpec> exchanges_;
  std::vector<QueueSpec> declared_;
  std::map<std::uint64_t, ConsumerRegistration> consumers_;
  std::vector<ConsumerRegistration> retired_;
  std::map<amqp_channel_t, std::uint64_t> channel_to_consumer_;
  // A consumer channel's deliveries not yet acked or rejected on the wire, and
  // the acks among them waiting for send_acks().
  struct ChannelAcks {
    std::set<std::uint64_t> in_hand;
    std::vector<std::uint64_t> acked;
  };
  std::map<amqp_channel_t, ChannelAcks> acks_;
  std::set<amqp_channel_t> open_channels_;
  std::uint64_t next_consumer_id_ = 1;
  std::function<void(Envelope)> reply_handler_;
  std::set<std::pair<std::string, std::string>> reply_bindings_;  // (exchange, key) of the reply queue
  std::string last_logged_;
};

}  // namespace intercomm::bus::detail
