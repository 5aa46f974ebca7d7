// RabbitMQ backend: one connection, one I/O thread, rabbitmq-c underneath.
#include "bus/amqp.hpp"

#include "bus/topology.hpp"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>

namespace intercomm::bus {
namespace {

using core::Error;
using core::ErrorCode;
using core::Result;
using std::chrono::milliseconds;

constexpr amqp_channel_t kPublishChannel = 1;  // confirms; also the reply queue's no-ack consumer
constexpr amqp_channel_t kDeclareChannel = 2;  // declarations: a failure closes only this channel
constexpr amqp_channel_t kReplyChannel = 3;    // RPC replies: no confirms, not mandatory
constexpr amqp_channel_t kFirstConsumerChannel = 10;
constexpr int kFramesPerTurn = 512;

amqp_bytes_t bytes_of(std::string_view text) {
  return amqp_bytes_t{text.size(), const_cast<char*>(text.data())};
}

std::string string_of(amqp_bytes_t bytes) {
  return bytes.len == 0 ? std::string() : std::string(static_cast<const char*>(bytes.bytes), bytes.len);
}

timeval timeval_of(milliseconds ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

Error unavailable(std::string message) {
  return Error::of(ErrorCode::internal_error, std::move(message));
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
      } else if (auto number = integer_of(entry.value)) {
        envelope.headers[key] = std::to_string(*number);
        if (key == "x-delivery-count") delivery_count = static_cast<std::uint32_t>(*number);
      }
    }
  }
  return envelope;
}

struct PendingPublish {
  PublishCallback done;
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

}  // namespace

// Everything that touches the connection runs on io_thread_.
class AmqpCore : public AckSink, public std::enable_shared_from_this<AmqpCore> {
 public:
  explicit AmqpCore(AmqpOptions options) : options_(std::move(options)), wake_fd_(eventfd(0, EFD_CLOEXEC)) {}

  ~AmqpCore() override {
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  void start() {
    io_thread_ = std::thread([self = shared_from_this()] { self->loop(); });
  }

  void stop() {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      stopping_ = true;
    }
    wake();
    if (io_thread_.joinable()) {
      if (io_thread_.get_id() == std::this_thread::get_id()) {
        io_thread_.detach();
      } else {
        io_thread_.join();
      }
    }
  }

  bool connected() const { return connected_.load(); }

  std::string reply_queue() const {
    std::lock_guard lock(mu_);
    return reply_queue_;
  }

  void post(Command command) {
    {
      std::lock_guard lock(mu_);
      if (!exited_) {
        // One wake-up per batch: a non-empty queue means one is already pending.
        const bool idle = commands_.empty();
        commands_.push_back(std::move(command));
        if (idle) wake();
        return;
      }
    }
    // The I/O thread is gone and the connection closed: a publish fails at
    // once, the rest have nothing to act on.
    if (!command.needs_connection) command.run();
  }

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

  void publish(std::string exchange, Envelope message, Clock::duration timeout, PublishCallback done) {
    const auto deadline = Clock::now() + timeout;
    post(Command{false, [this, exchange = std::move(exchange), message = std::move(message), deadline,
                         done = std::move(done)]() mutable {
                   do_publish(exchange, message, deadline, std::move(done));
                 }});
  }

  void publish_reply(Envelope message) {
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
                   const int status = amqp_basic_publish(conn_, kReplyChannel, amqp_empty_bytes,
                                                         bytes_of(message.routing_key), 0, 0, &props,
                                                         bytes_of(message.body));
                   if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
                 }});
  }

  Result<void> declare_queue(QueueSpec spec) {
    return call<void>(true, [this, spec = std::move(spec)]() -> Result<void> {
      auto declared = do_declare_queue(spec);
      if (declared) {
        std::erase_if(declared_, [&](const QueueSpec& known) { return known.name == spec.name; });
        declared_.push_back(spec);
      }
      return declared;
    });
  }

  Result<void> declare_exchange(ExchangeSpec spec) {
    return call<void>(true, [this, spec = std::move(spec)]() -> Result<void> {
      auto declared = do_declare_exchange(spec);
      if (declared) {
        std::erase_if(exchanges_, [&](const ExchangeSpec& known) { return known.name == spec.name; });
        exchanges_.push_back(spec);
      }
      return declared;
    });
  }

  Result<void> unbind(std::string source, std::string destination, std::string key, bool to_exchange) {
    return call<void>(true, [=, this]() -> Result<void> {
      if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
      if (to_exchange) {
        amqp_exchange_unbind(conn_, kDeclareChannel, bytes_of(destination), bytes_of(source), bytes_of(key),
                             amqp_empty_table);
      } else {
        amqp_queue_unbind(conn_, kDeclareChannel, bytes_of(destination), bytes_of(source), bytes_of(key),
                          amqp_empty_table);
      }
      // A missing exchange or queue (404) closes only the declare channel: nothing was bound.
      if (auto ok = rpc_result(kDeclareChannel, "unbind " + destination); !ok && (!conn_ || broken_)) return ok;
      return {};
    });
  }

  Result<std::uint64_t> add_consumer(std::string queue, std::uint16_t prefetch, DeliveryHandler handler) {
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

  void cancel_consumer(std::uint64_t id) {
    auto cancel = [this, id] {
      auto found = consumers_.find(id);
      if (found == consumers_.end()) return;
      if (conn_ && found->second.channel != 0) {
        open_channels_.erase(found->second.channel);
        channel_to_consumer_.erase(found->second.channel);
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
  void pause_consumer(std::uint64_t id) {
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

  // Runs `fn` on the I/O thread: inline when already there (from a handler),
  // else posted, waiting up to the rpc timeout for it to have run.
  void run_on_io_thread(const std::function<void()>& fn) {
    if (std::this_thread::get_id() == io_thread_.get_id()) {
      fn();
      return;
    }
    auto promise = std::make_shared<std::promise<void>>();
    auto future = promise->get_future();
    post(Command{false, [fn, promise] {
                   fn();
                   promise->set_value();
                 }});
    future.wait_for(options_.rpc_timeout);
  }

  Result<void> open_reply_queue(std::function<void(Envelope)> on_reply) {
    return call<void>(true, [this, on_reply = std::move(on_reply)]() mutable -> Result<void> {
      if (reply_handler_) return Error::of(ErrorCode::conflict, "reply queue: already open");
      reply_handler_ = std::move(on_reply);
      return subscribe_reply_queue();
    });
  }

  void bind_reply_queue(std::string exchange, std::string key, bool bind,
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

  void settle(std::uint64_t tag, std::uint64_t generation, bool ack, bool requeue) override {
    post(Command{false, [this, tag, generation, ack, requeue] {
                   const auto channel = static_cast<amqp_channel_t>(generation & 0xFFFF);
                   if (!conn_ || (generation >> 16) != generation_ || !open_channels_.contains(channel))
                     return;
                   const int status = ack ? amqp_basic_ack(conn_, channel, tag, 0)
                                          : amqp_basic_reject(conn_, channel, tag, requeue ? 1 : 0);
                   if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
                 }});
  }

 private:
  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = write(wake_fd_, &one, sizeof one);
  }

  void loop() {
    milliseconds backoff = options_.reconnect_min;
    while (!stopping()) {
      if (!conn_) {
        if (connect()) {
          backoff = options_.reconnect_min;
          run_deferred();
        } else {
          teardown();
          run_commands();  // publishes fail now, the rest wait for a connection
          wait_for_wake(backoff);
          backoff = std::min(backoff * 2, options_.reconnect_max);
          continue;
        }
      }
      retired_.clear();
      run_commands();
      if (broken_) {
        teardown();
        continue;
      }
      expire_publishes();
      read_frames();
      if (broken_) {
        teardown();
        continue;
      }
      if (has_commands()) continue;
      if (amqp_frames_enqueued(conn_) || amqp_data_in_buffer(conn_)) continue;

      pollfd fds[2] = {{amqp_get_sockfd(conn_), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      poll(fds, 2, static_cast<int>(poll_timeout().count()));
      if (fds[1].revents & POLLIN) drain_wake();
    }
    teardown();
    // Whatever is still queued can no longer run: fail publishes, drop the rest.
    std::deque<Command> left;
    {
      std::lock_guard lock(mu_);
      left.swap(commands_);
      exited_ = true;
    }
    connected_ = false;
    for (auto& command : left) {
      if (!command.needs_connection) command.run();
    }
  }

  bool stopping() const {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  bool has_commands() const {
    std::lock_guard lock(mu_);
    return !commands_.empty();
  }

  void drain_wake() {
    std::uint64_t value = 0;
    [[maybe_unused]] auto n = read(wake_fd_, &value, sizeof value);
  }

  void wait_for_wake(milliseconds timeout) {
    pollfd fd{wake_fd_, POLLIN, 0};
    if (poll(&fd, 1, static_cast<int>(timeout.count())) > 0) drain_wake();
  }

  milliseconds poll_timeout() const {
    milliseconds timeout(100);
    if (!deadlines_.empty()) {
      const auto until = std::chrono::ceil<milliseconds>(deadlines_.begin()->first - Clock::now());
      timeout = std::clamp(until, milliseconds(0), timeout);
    }
    return timeout;
  }

  void run_commands() {
    std::deque<Command> batch;
    {
      std::lock_guard lock(mu_);
      batch.swap(commands_);
    }
    for (auto& command : batch) {
      if (command.needs_connection && (!conn_ || broken_)) {
        deferred_.push_back(std::move(command));
      } else {
        command.run();
      }
    }
  }

  void run_deferred() {
    std::deque<Command> batch;
    batch.swap(deferred_);
    for (auto& command : batch) command.run();
  }

  // --- connection lifecycle ---

  bool connect() {
    std::string url = options_.url;
    amqp_connection_info info{};
    if (amqp_parse_url(url.data(), &info) != AMQP_STATUS_OK) {
      spdlog::error("bus: cannot parse AMQP URL {}", options_.url);
      return false;
    }
    conn_ = amqp_new_connection();
    amqp_socket_t* socket = amqp_tcp_socket_new(conn_);
    if (socket == nullptr) return false;
    timeval connect_timeout = timeval_of(options_.connect_timeout);
    const int opened = amqp_socket_open_noblock(socket, info.host, info.port, &connect_timeout);
    if (opened != AMQP_STATUS_OK) {
      log_once(fmt::format("bus: cannot reach {}:{}: {}", info.host, info.port, amqp_error_string2(opened)));
      return false;
    }
    timeval rpc_timeout = timeval_of(options_.rpc_timeout);
    amqp_set_rpc_timeout(conn_, &rpc_timeout);
    // "amqp://host/" names no vhost; like most clients, take it as the default "/".
    const char* vhost = (info.vhost == nullptr || *info.vhost == '\0') ? "/" : info.vhost;
    const auto login = amqp_login(conn_, vhost, 0, 131072, options_.heartbeat_seconds, AMQP_SASL_METHOD_PLAIN,
                                  info.user, info.password);
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
      log_once(fmt::format("bus: login to {}:{} failed", info.host, info.port));
      return false;
    }
    ++generation_;
    next_channel_ = kFirstConsumerChannel;
    if (!open_channel(kPublishChannel) || !open_channel(kDeclareChannel) || !open_channel(kReplyChannel)) {
      return false;
    }
    amqp_confirm_select(conn_, kPublishChannel);
    if (!rpc_ok(kPublishChannel, "confirm.select")) return false;
    if (!declare_base_topology()) return false;
    for (const auto& spec : exchanges_) {
      if (!do_declare_exchange(spec)) return false;
    }
    for (const auto& spec : declared_) {
      if (!do_declare_queue(spec)) return false;
    }
    if (reply_handler_ && !subscribe_reply_queue()) return false;
    for (auto& [id, registration] : consumers_) {
      if (!registration.paused && !subscribe(id, registration)) return false;
    }
    next_publish_seq_ = 1;
    connected_ = true;
    last_logged_.clear();
    spdlog::info("bus: connected to {}:{}{}", info.host, info.port, generation_ > 1 ? " (reconnected)" : "");
    return true;
  }

  void log_once(const std::string& message) {
    if (message != last_logged_) spdlog::warn("{}", message);
    last_logged_ = message;
  }

  void fail_connection(std::string_view reason) {
    if (!broken_) spdlog::warn("bus: connection lost: {}", reason);
    broken_ = true;
  }

  void teardown() {
    const bool was_connected = connected_.exchange(false);
    for (auto& [seq, pending] : pending_) pending.done(PublishStatus::failed);
    pending_.clear();
    deadlines_.clear();
    for (auto& [id, registration] : consumers_) registration.channel = 0;
    channel_to_consumer_.clear();
    open_channels_.clear();
    {
      std::lock_guard lock(mu_);
      reply_queue_.clear();
    }
    if (conn_) {
      if (!broken_ && stopping()) amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
      amqp_destroy_connection(conn_);
      conn_ = nullptr;
    }
    broken_ = false;
    if (was_connected) ++generation_;  // settles of the old connection become no-ops
  }

  bool open_channel(amqp_channel_t channel) {
    amqp_channel_open(conn_, channel);
    if (!rpc_ok(channel, "channel.open")) return false;
    open_channels_.insert(channel);
    return true;
  }

  // Checks the reply of the last synchronous method. A channel-level error
  // closes only that channel (acknowledged here); a connection-level or
  // library error breaks the connection.
  Result<void> rpc_result(amqp_channel_t channel, std::string_view what) {
    const amqp_rpc_reply_t reply = amqp_get_rpc_reply(conn_);
    switch (reply.reply_type) {
      case AMQP_RESPONSE_NORMAL: return {};
      case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
          const auto* close = static_cast<amqp_channel_close_t*>(reply.reply.decoded);
          const std::string text = string_of(close->reply_text);
          amqp_channel_close_ok_t close_ok{};
          amqp_send_method(conn_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok);
          open_channels_.erase(channel);
          return Error::of(ErrorCode::internal_error, fmt::format("{}: {}", what, text));
        }
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
          const auto* close = static_cast<amqp_connection_close_t*>(reply.reply.decoded);
          const std::string text = string_of(close->reply_text);
          amqp_connection_close_ok_t close_ok{};
          amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &close_ok);
          fail_connection(text);
          return unavailable(fmt::format("{}: {}", what, text));
        }
        fail_connection("unexpected server method");
        return unavailable(fmt::format("{}: unexpected reply", what));
      case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        fail_connection(amqp_error_string2(reply.library_error));
        return unavailable(fmt::format("{}: {}", what, amqp_error_string2(reply.library_error)));
      case AMQP_RESPONSE_NONE: break;
    }
    fail_connection("no reply");
    return unavailable(fmt::format("{}: no reply", what));
  }

  bool rpc_ok(amqp_channel_t channel, std::string_view what) {
    auto result = rpc_result(channel, what);
    if (!result) {
      spdlog::warn("bus: {}", result.error().message);
      broken_ = true;
    }
    return bool(result);
  }

  // The declare channel after a channel error is reopened for the next declaration.
  bool ensure_declare_channel() {
    return open_channels_.contains(kDeclareChannel) || open_channel(kDeclareChannel);
  }

  bool declare_base_topology() {
    const amqp_table_t none = amqp_empty_table;
    for (auto [name, type] :
         {std::pair{kExchange, "direct"}, {kLiveExchange, "direct"}, {kDeadLetterExchange, "fanout"}}) {
      amqp_exchange_declare(conn_, kDeclareChannel, bytes_of(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
                            none);
      if (!rpc_ok(kDeclareChannel, "exchange.declare")) return false;
    }
    amqp_table_entry_t quorum{};
    quorum.key = amqp_cstring_bytes("x-queue-type");
    quorum.value.kind = AMQP_FIELD_KIND_UTF8;
    quorum.value.value.bytes = amqp_cstring_bytes("quorum");
    amqp_queue_declare(conn_, kDeclareChannel, bytes_of(kDeadLetterQueue), 0, 1, 0, 0,
                       amqp_table_t{1, &quorum});
    if (!rpc_ok(kDeclareChannel, "queue.declare dead_letters")) return false;
    amqp_queue_bind(conn_, kDeclareChannel, bytes_of(kDeadLetterQueue), bytes_of(kDeadLetterExchange),
                    amqp_empty_bytes, none);
    return rpc_ok(kDeclareChannel, "queue.bind dead_letters");
  }

  Result<void> do_declare_exchange(const ExchangeSpec& spec) {
    if (!conn_) return unavailable("bus: not connected");
    if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
    const char* type = spec.type == ExchangeType::consistent_hash ? "x-consistent-hash"
                       : spec.type == ExchangeType::fanout        ? "fanout"
                                                                  : "direct";
    amqp_table_entry_t hash_header{};
    amqp_table_t arguments = amqp_empty_table;
    if (spec.type == ExchangeType::consistent_hash) {
      hash_header.key = amqp_cstring_bytes("hash-header");
      hash_header.value.kind = AMQP_FIELD_KIND_UTF8;
      hash_header.value.value.bytes = bytes_of(spec.hash_header);
      arguments = amqp_table_t{1, &hash_header};
    }
    amqp_exchange_declare(conn_, kDeclareChannel, bytes_of(spec.name), amqp_cstring_bytes(type), 0, 1, 0, 0,
                          arguments);
    if (auto ok = rpc_result(kDeclareChannel, "exchange.declare " + spec.name); !ok) {
      if (spec.type == ExchangeType::consistent_hash) {
        return Error::of(
            ok.error().code,
            ok.error().message +
                " (is the plugin enabled? rabbitmq-plugins enable rabbitmq_consistent_hash_exchange)");
      }
      return ok;
    }
    for (const auto& key : spec.source_keys) {
      amqp_exchange_bind(conn_, kDeclareChannel, bytes_of(spec.name), bytes_of(spec.source), bytes_of(key),
                         amqp_empty_table);
      if (auto ok = rpc_result(kDeclareChannel, "exchange.bind " + spec.name); !ok) return ok;
    }
    return {};
  }

  Result<void> do_declare_queue(const QueueSpec& spec) {
    if (!conn_) return unavailable("bus: not connected");
    if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
    std::vector<amqp_table_entry_t> arguments;
    const auto text = [&](const char* key, std::string_view value) {
      amqp_table_entry_t entry{};
      entry.key = amqp_cstring_bytes(key);
      entry.value.kind = AMQP_FIELD_KIND_UTF8;
      entry.value.value.bytes = bytes_of(value);
      arguments.push_back(entry);
    };
    text("x-dead-letter-exchange", spec.dead_letter_exchange.empty()
                                       ? kDeadLetterExchange
                                       : std::string_view(spec.dead_letter_exchange));
    if (!spec.dead_letter_routing_key.empty())
      text("x-dead-letter-routing-key", spec.dead_letter_routing_key);
    if (spec.message_ttl) {
      amqp_table_entry_t ttl{};
      ttl.key = amqp_cstring_bytes("x-message-ttl");
      ttl.value.kind = AMQP_FIELD_KIND_I64;
      ttl.value.value.i64 = spec.message_ttl->count();
      arguments.push_back(ttl);
    }
    if (spec.single_active_consumer) {
      amqp_table_entry_t single{};
      single.key = amqp_cstring_bytes("x-single-active-consumer");
      single.value.kind = AMQP_FIELD_KIND_BOOLEAN;
      single.value.value.boolean = 1;
      arguments.push_back(single);
    }
    if (spec.type == QueueType::quorum) {
      text("x-queue-type", "quorum");
      if (spec.delivery_limit > 0) {
        amqp_table_entry_t limit{};
        limit.key = amqp_cstring_bytes("x-delivery-limit");
        limit.value.kind = AMQP_FIELD_KIND_I64;
        limit.value.value.i64 = spec.delivery_limit;
        arguments.push_back(limit);
      }
    }
    amqp_queue_declare(conn_, kDeclareChannel, bytes_of(spec.name), 0, 1, 0, 0,
                       amqp_table_t{static_cast<int>(arguments.size()), arguments.data()});
    if (auto ok = rpc_result(kDeclareChannel, "queue.declare " + spec.name); !ok) return ok;
    const std::string_view exchange =
        spec.bind_exchange.empty() ? kExchange : std::string_view(spec.bind_exchange);
    for (const auto& key : spec.binding_keys) {
      amqp_queue_bind(conn_, kDeclareChannel, bytes_of(spec.name), bytes_of(exchange), bytes_of(key),
                      amqp_empty_table);
      if (auto ok = rpc_result(kDeclareChannel, "queue.bind " + spec.name); !ok) return ok;
    }
    return {};
  }

  Result<void> subscribe_reply_queue() {
    auto* declared =
        amqp_queue_declare(conn_, kPublishChannel, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
    if (auto ok = rpc_result(kPublishChannel, "queue.declare reply queue"); !ok) return ok;
    std::string name = string_of(declared->queue);
    amqp_basic_consume(conn_, kPublishChannel, bytes_of(name), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
    if (auto ok = rpc_result(kPublishChannel, "basic.consume reply queue"); !ok) return ok;
    {
      std::lock_guard lock(mu_);
      reply_queue_ = name;
    }
    for (const auto& [exchange, key] : reply_bindings_) {
      if (auto ok = apply_reply_binding(name, exchange, key, true); !ok) return ok;
    }
    return {};
  }

  Result<void> apply_reply_binding(const std::string& queue, const std::string& exchange,
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

  Result<void> subscribe(std::uint64_t id, ConsumerRegistration& registration) {
    if (!conn_) return {};  // subscribed on connect
    const amqp_channel_t channel = next_channel_++;
    amqp_channel_open(conn_, channel);
    if (auto ok = rpc_result(channel, "channel.open"); !ok) return ok;
    open_channels_.insert(channel);
    if (registration.prefetch > 0) {
      amqp_basic_qos(conn_, channel, 0, registration.prefetch, 0);
      if (auto ok = rpc_result(channel, "basic.qos"); !ok) return ok;
    }
    auto* consumed = amqp_basic_consume(conn_, channel, bytes_of(registration.queue), amqp_empty_bytes, 0, 0,
                                        0, amqp_empty_table);
    if (auto ok = rpc_result(channel, "basic.consume " + registration.queue); !ok) return ok;
    registration.consumer_tag = string_of(consumed->consumer_tag);
    registration.channel = channel;
    channel_to_consumer_[channel] = id;
    return {};
  }

  // --- publishing ---

  void do_publish(const std::string& exchange, const Envelope& message, Clock::time_point deadline,
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
    const int status =
        amqp_basic_publish(conn_, kPublishChannel, bytes_of(exchange), bytes_of(message.routing_key), 1, 0,
                           &props, bytes_of(message.body));
    if (status != AMQP_STATUS_OK) fail_connection(amqp_error_string2(status));
  }

  void finish(std::map<std::uint64_t, PendingPublish>::iterator it, PublishStatus status) {
    auto done = std::move(it->second.done);
    if (status == PublishStatus::confirmed && it->second.returned) status = PublishStatus::unroutable;
    pending_.erase(it);
    done(status);
  }

  void confirm(std::uint64_t tag, bool multiple, PublishStatus status) {
    if (multiple) {
      while (!pending_.empty() && pending_.begin()->first <= tag) finish(pending_.begin(), status);
    } else if (auto it = pending_.find(tag); it != pending_.end()) {
      finish(it, status);
    }
  }

  void expire_publishes() {
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
      const auto seq = deadlines_.begin()->second;
      deadlines_.erase(deadlines_.begin());
      if (auto it = pending_.find(seq); it != pending_.end()) finish(it, PublishStatus::timeout);
    }
  }

  // --- reading ---

  void read_frames() {
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

  void handle_frame(const amqp_frame_t& frame) {
    if (frame.frame_type != AMQP_FRAME_METHOD) return;
    const amqp_channel_t channel = frame.channel;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
        confirm(ack->delivery_tag, ack->multiple != 0, PublishStatus::confirmed);
        return;
      }
      case AMQP_BASIC_NACK_METHOD: {
        const auto* nack = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
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

  void deliver_to_consumer(amqp_channel_t channel, std::uint64_t tag, bool redelivered,
                           std::uint32_t delivery_count, Envelope envelope) {
    if (channel == kPublishChannel) {
      if (reply_handler_) reply_handler_(std::move(envelope));
      return;
    }
    auto consumer_id = channel_to_consumer_.find(channel);
    if (consumer_id == channel_to_consumer_.end()) return;
    auto registration = consumers_.find(consumer_id->second);
    if (registration == consumers_.end()) return;
    registration->second.handler(std::make_unique<Delivery>(std::move(envelope), redelivered, delivery_count,
                                                            tag, (generation_ << 16) | channel,
                                                            shared_from_this()));
  }

  AmqpOptions options_;
  int wake_fd_;
  std::thread io_thread_;

  mutable std::mutex mu_;  // guards commands_, stopping_, exited_, reply_queue_
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
  std::map<std::uint64_t, PendingPublish> pending_;
  std::multimap<Clock::time_point, std::uint64_t> deadlines_;
  std::deque<Command> deferred_;
  std::vector<ExchangeSpec> exchanges_;
  std::vector<QueueSpec> declared_;
  std::map<std::uint64_t, ConsumerRegistration> consumers_;
  std::vector<ConsumerRegistration> retired_;
  std::map<amqp_channel_t, std::uint64_t> channel_to_consumer_;
  std::set<amqp_channel_t> open_channels_;
  std::uint64_t next_consumer_id_ = 1;
  std::function<void(Envelope)> reply_handler_;
  std::set<std::pair<std::string, std::string>> reply_bindings_;  // (exchange, key) of the reply queue
  std::string last_logged_;
};

namespace {

class AmqpSubscription : public Subscription {
 public:
  AmqpSubscription(std::shared_ptr<AmqpCore> core, std::uint64_t id) : core_(std::move(core)), id_(id) {}
  ~AmqpSubscription() override { core_->cancel_consumer(id_); }
  void pause() override { core_->pause_consumer(id_); }

 private:
  std::shared_ptr<AmqpCore> core_;
  std::uint64_t id_;
};

class AmqpBus : public Bus {
 public:
  explicit AmqpBus(AmqpOptions options) : core_(std::make_shared<AmqpCore>(std::move(options))) {
    core_->start();
  }
  ~AmqpBus() override { core_->stop(); }

  core::Result<void> declare_queue(const QueueSpec& spec) override { return core_->declare_queue(spec); }

  core::Result<void> declare_exchange(const ExchangeSpec& spec) override {
    return core_->declare_exchange(spec);
  }

  core::Result<void> unbind(std::string_view source, std::string_view destination, std::string_view key,
                            bool to_exchange) override {
    return core_->unbind(std::string(source), std::string(destination), std::string(key), to_exchange);
  }

  void publish(std::string_view exchange, Envelope message, Clock::duration timeout,
               PublishCallback done) override {
    core_->publish(std::string(exchange), std::move(message), timeout, std::move(done));
  }

  void publish_reply(Envelope message) override { core_->publish_reply(std::move(message)); }

  std::unique_ptr<Subscription> consume(const std::string& queue, std::uint16_t prefetch,
                                        DeliveryHandler handler) override {
    auto id = core_->add_consumer(queue, prefetch, std::move(handler));
    if (!id) {
      spdlog::warn("bus: cannot consume {}: {}", queue, id.error().message);
      return nullptr;
    }
    return std::make_unique<AmqpSubscription>(core_, *id);
  }

  core::Result<void> open_reply_queue(std::function<void(Envelope)> on_reply) override {
    return core_->open_reply_queue(std::move(on_reply));
  }

  std::string reply_queue() const override { return core_->reply_queue(); }

  void bind_reply_queue(std::string exchange, std::string key, bool bind,
                        std::function<void(core::Result<void>)> done) override {
    core_->bind_reply_queue(std::move(exchange), std::move(key), bind, std::move(done));
  }

  bool connected() const override { return core_->connected(); }

 private:
  std::shared_ptr<AmqpCore> core_;
};

}  // namespace

std::unique_ptr<Bus> connect_amqp(AmqpOptions options) {
  return std::make_unique<AmqpBus>(std::move(options));
}

bool wait_connected(const Bus& bus, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!bus.connected()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace intercomm::bus
