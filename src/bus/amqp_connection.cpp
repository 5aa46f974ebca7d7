// The RabbitMQ connection: the I/O loop, connecting with back-off, the command queue, failures.
#include "bus/amqp_core.hpp"

#include "bus/topology.hpp"
#include "core/config.hpp"
#include "core/logging.hpp"

#include <amqp_tcp_socket.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace intercomm::bus::detail {

AmqpCore::~AmqpCore() {
  if (wake_fd_ >= 0) close(wake_fd_);
}

void AmqpCore::start() {
  io_thread_ = std::thread([self = shared_from_this()] {
    core::logging::name_this_thread("amqp-io");
    self->loop();
  });
}

void AmqpCore::stop() {
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

void AmqpCore::post(Command command) {
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

// Runs `fn` on the I/O thread: inline when already there (from a handler),
// else posted, waiting up to the rpc timeout for it to have run.
void AmqpCore::run_on_io_thread(const std::function<void()>& fn) {
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

void AmqpCore::wake() {
  const std::uint64_t one = 1;
  [[maybe_unused]] auto written = write(wake_fd_, &one, sizeof one);
}

void AmqpCore::loop() {
  milliseconds backoff = options_.reconnect_min;
  while (!stopping()) {
    if (!conn_) {
      if (connect()) {
        backoff = options_.reconnect_min;
        run_deferred();
      } else {
        teardown();
        run_commands();  // jobs wait for a connection until their deadline, the rest fail now
        expire_publishes();
        wait_for_wake(std::min(backoff, poll_timeout()));
        backoff = std::min(backoff * 2, options_.reconnect_max);
        continue;
      }
    }
    retired_.clear();
    run_commands();
    send_waiting();
    if (broken_) {
      teardown();
      continue;
    }
    expire_publishes();
    read_frames();
    if (renew_publish_channel_ && pending_.empty() && !broken_) renew_publish_channel();
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
  abandon_publishes();
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

bool AmqpCore::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

bool AmqpCore::has_commands() const {
  std::lock_guard lock(mu_);
  return !commands_.empty();
}

void AmqpCore::drain_wake() {
  std::uint64_t value = 0;
  [[maybe_unused]] auto n = read(wake_fd_, &value, sizeof value);
}

void AmqpCore::wait_for_wake(milliseconds timeout) {
  pollfd fd{wake_fd_, POLLIN, 0};
  if (poll(&fd, 1, static_cast<int>(timeout.count())) > 0) drain_wake();
}

milliseconds AmqpCore::poll_timeout() const {
  milliseconds timeout(100);
  const auto now = Clock::now();
  const auto within = [&](Clock::time_point at) {
    timeout = std::clamp(std::chrono::ceil<milliseconds>(at - now), milliseconds(0), timeout);
  };
  if (!deadlines_.empty()) within(deadlines_.begin()->first);
  for (const auto& publish : waiting_) {
    within(publish.deadline);
    if (connected_) within(publish.not_before);
  }
  return timeout;
}

void AmqpCore::run_commands() {
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
  if (conn_) send_acks();
}

void AmqpCore::run_deferred() {
  std::deque<Command> batch;
  batch.swap(deferred_);
  for (auto& command : batch) command.run();
}

bool AmqpCore::connect() {
  // Every node once, from where the last connection was (or the one after
  // the node that just failed): in a cluster, another node takes over.
  const std::size_t count = std::max<std::size_t>(1, options_.urls.size());
  for (std::size_t tried = 0; tried < count && !stopping(); ++tried) {
    const std::size_t index = (next_url_ + tried) % count;
    if (connect_to(options_.urls.empty() ? std::string() : options_.urls[index])) {
      next_url_ = index;
      return true;
    }
    teardown();
  }
  next_url_ = (next_url_ + 1) % count;
  return false;
}

bool AmqpCore::connect_to(std::string url) {
  amqp_connection_info info{};
  const std::string masked = core::mask_url_password(url);  // amqp_parse_url cuts `url` up in place
  if (amqp_parse_url(url.data(), &info) != AMQP_STATUS_OK) {
    log_once("bus: cannot parse the AMQP URL " + masked);
    return false;
  }
  if (info.ssl) {  // the flags refuse amqps:// already; a plain socket must never stand in for TLS
    log_once("bus: " + masked + ": amqps (TLS) is not supported");
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
  if (!open_channel(kReplyQueueChannel) || !open_channel(kDeclareChannel) || !open_channel(kReplyChannel) ||
      !open_channel(kPublishChannel)) {
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
  spdlog::info("bus: connected to {}:{}{}", info.host, info.port, was_connected_ ? " (reconnected)" : "");
  if (was_connected_) {
    std::function<void()> callback;
    {
      std::lock_guard lock(mu_);
      callback = on_reconnected_;
    }
    if (callback) callback();
  }
  was_connected_ = true;
  return true;
}

void AmqpCore::log_once(const std::string& message) {
  if (message != last_logged_) spdlog::warn("{}", message);
  last_logged_ = message;
}

void AmqpCore::fail_connection(std::string_view reason) {
  if (!broken_) spdlog::warn("bus: connection lost: {}", reason);
  broken_ = true;
}

void AmqpCore::teardown() {
  const bool was_connected = connected_.exchange(false);
  // Sent and never confirmed: the broker may have them (jobs go again on the next connection).
  std::map<std::uint64_t, PendingPublish> unconfirmed;
  unconfirmed.swap(pending_);
  deadlines_.clear();
  for (auto& [seq, pending] : unconfirmed) settle_publish(std::move(pending.publish), PublishStatus::unknown);
  for (auto& [id, registration] : consumers_) registration.channel = 0;
  channel_to_consumer_.clear();
  acks_.clear();
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
  renew_publish_channel_ = false;  // the next connection opens a new one
  if (was_connected) ++generation_;  // settles of the old connection become no-ops
}

bool AmqpCore::open_channel(amqp_channel_t channel) {
  amqp_channel_open(conn_, channel);
  if (!rpc_ok(channel, "channel.open")) return false;
  open_channels_.insert(channel);
  return true;
}

// Checks the reply of the last synchronous method. A channel-level error
// closes only that channel (acknowledged here); a connection-level or
// library error breaks the connection.
Result<void> AmqpCore::rpc_result(amqp_channel_t channel, std::string_view what) {
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

bool AmqpCore::rpc_ok(amqp_channel_t channel, std::string_view what) {
  auto result = rpc_result(channel, what);
  if (!result) {
    spdlog::warn("bus: {}", result.error().message);
    broken_ = true;
  }
  return bool(result);
}

}  // namespace intercomm::bus::detail
