// The stream hub: users' sockets, the live bindings, and replays.
#include "gateway/stream.hpp"

#include "bus/topology.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <deque>

namespace intercomm::gateway {
namespace {

namespace json = boost::json;

std::string live_key(std::string_view user) {
  return fmt::format("user.{}", user);
}

}  // namespace

// One socket's side: replay first, then live; every message id sent once.
class StreamHub::Socket : public WsHandler, public std::enable_shared_from_this<Socket> {
 public:
  Socket(std::shared_ptr<StreamHub> hub, std::string user, std::optional<std::string> after,
         std::string request_id)
      : hub_(std::move(hub)),
        user_(std::move(user)),
        after_(std::move(after)),
        request_id_(std::move(request_id)) {}

  const std::string& user() const { return user_; }

  void on_open(std::shared_ptr<WsConnection> connection) override {
    {
      std::lock_guard lock(mu_);
      connection_ = std::move(connection);
    }
    hub_->attach(shared_from_this());
  }

  void on_text(std::string_view) override {}  // the stream is one-way; clients send with POST /v1/messages

  void on_close() override {
    {
      std::lock_guard lock(mu_);
      connection_.reset();
    }
    hub_->detach(shared_from_this());
  }

  // The live binding is in place: replay (when asked), then go live.
  void bound(bool ok) {
    if (!ok) {
      close(kCloseTryAgainLater, "live delivery unavailable; reconnect with ?after=");
      return;
    }
    if (!after_) {
      go_live();
      return;
    }
    replay_page(std::nullopt, {}, 0);
  }

  // A live message for this socket's user (`id` already parsed out of `text`).
  void live(const std::string& id, const std::string& text) {
    std::lock_guard lock(mu_);
    if (replaying_) {
      buffered_.emplace_back(id, text);
      return;
    }
    if (connection_) connection_->send(text);
  }

  void close(std::uint16_t code, std::string reason) {
    std::lock_guard lock(mu_);
    if (connection_) connection_->close(code, std::move(reason));
  }

 private:
  // Collects the inbox after `after_`, newest first, page by page; then sends
  // it oldest first and goes live.
  void replay_page(std::optional<std::string> before, std::vector<json::value> collected, std::size_t pages) {
    json::object params{{"user", user_}, {"after", *after_}, {"limit", hub_->options_.replay_page}};
    if (before) params["before"] = *before;
    auto self = shared_from_this();
    hub_->rpc_->call(
        "list_messages", std::move(params), hub_->options_.rpc_timeout,
        {{std::string(bus::kRequestIdHeader), request_id_}, {std::string(bus::kUserHeader), user_}},
        [self, collected = std::move(collected), pages](bus::RpcResult result) mutable {
          if (!result || !result->is_object()) {
            self->close(kCloseTryAgainLater, "replay failed; reconnect with ?after=");
            return;
          }
          const auto& page = result->as_object();
          for (const auto& message : page.at("messages").as_array()) collected.push_back(message);
          const auto& next = page.at("next");
          if (next.is_string() && pages + 1 < self->hub_->options_.max_replay_pages) {
            self->replay_page(std::string(next.as_string()), std::move(collected), pages + 1);
            return;
          }
          self->finish_replay(std::move(collected), next.is_string());
        });
  }

  void finish_replay(std::vector<json::value> newest_first, bool truncated) {
    std::lock_guard lock(mu_);
    if (!connection_) return;
    std::set<std::string> sent;
    if (truncated) connection_->send(R"({"type":"replay_truncated"})");
    for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
      sent.emplace(it->at("message_id").as_string());
      connection_->send(json::serialize(json::object{{"type", "message"}, {"message", *it}}));
    }
    connection_->send(json::serialize(json::object{{"type", "replayed"}, {"count", newest_first.size()}}));
    // Live messages that came during the replay: each once, none before the cursor.
    for (auto& [id, text] : buffered_) {
      if (id > *after_ && sent.insert(id).second) connection_->send(text);
    }
    buffered_.clear();
    replaying_ = false;
    connection_->send(std::string(kLiveFrame));
  }

  void go_live() {
    std::lock_guard lock(mu_);
    replaying_ = false;
    if (connection_) connection_->send(std::string(kLiveFrame));
  }

  static constexpr std::string_view kLiveFrame = R"({"type":"live"})";

  std::shared_ptr<StreamHub> hub_;
  std::string user_;
  std::optional<std::string> after_;
  std::string request_id_;
  std::mutex mu_;
  std::shared_ptr<WsConnection> connection_;
  bool replaying_ = true;  // until bound (and replayed): live messages wait
  std::deque<std::pair<std::string, std::string>> buffered_;
};

StreamHub::StreamHub(bus::Bus& bus, StreamOptions options) : bus_(bus), options_(options) {}

std::shared_ptr<WsHandler> StreamHub::open(std::string user, std::optional<std::string> after,
                                           std::string request_id) {
  return std::make_shared<Socket>(shared_from_this(), std::move(user), std::move(after),
                                  std::move(request_id));
}

std::size_t StreamHub::sockets() const {
  std::lock_guard lock(mu_);
  std::size_t count = 0;
  for (const auto& [user, entry] : users_) count += entry.sockets.size();
  return count;
}

void StreamHub::attach(const std::shared_ptr<Socket>& socket) {
  bool bind = false;
  bool already_bound = false;
  {
    std::lock_guard lock(mu_);
    auto& entry = users_[socket->user()];
    bind = entry.sockets.empty() && entry.waiting_for_bind.empty() && !entry.bound;
    entry.sockets.insert(socket);
    already_bound = entry.bound;
    if (!already_bound) entry.waiting_for_bind.insert(socket);
  }
  if (already_bound) {
    socket->bound(true);
    return;
  }
  if (!bind) return;  // a bind for this user is on its way
  const std::string user = socket->user();
  bus_.bind_reply_queue(std::string(bus::kLiveExchange), live_key(user), true,
                        [self = shared_from_this(), user](core::Result<void> result) {
                          std::set<std::shared_ptr<Socket>> waiting;
                          {
                            std::lock_guard lock(self->mu_);
                            auto found = self->users_.find(user);
                            if (found == self->users_.end()) {
                              // Every socket left while binding: take the binding back.
                              if (result) {
                                self->bus_.bind_reply_queue(std::string(bus::kLiveExchange), live_key(user),
                                                            false, nullptr);
                              }
                              return;
                            }
                            found->second.bound = bool(result);
                            waiting.swap(found->second.waiting_for_bind);
                          }
                          if (!result)
                            spdlog::warn("stream: cannot bind {}: {}", user, result.error().message);
                          for (const auto& socket : waiting) socket->bound(bool(result));
                        });
}

void StreamHub::detach(const std::shared_ptr<Socket>& socket) {
  bool unbind = false;
  {
    std::lock_guard lock(mu_);
    auto found = users_.find(socket->user());
    if (found == users_.end()) return;
    found->second.sockets.erase(socket);
    found->second.waiting_for_bind.erase(socket);
    if (found->second.sockets.empty()) {
      unbind = found->second.bound;
      users_.erase(found);
    }
  }
  if (unbind) {
    bus_.bind_reply_queue(std::string(bus::kLiveExchange), live_key(socket->user()), false,
                          [user = socket->user()](core::Result<void> result) {
                            if (!result)
                              spdlog::warn("stream: cannot unbind {}: {}", user, result.error().message);
                          });
  }
}

bool StreamHub::deliver(bus::Envelope& envelope) {
  const std::string_view key = envelope.routing_key;
  if (!key.starts_with("user.")) return false;
  const std::string user(key.substr(5));
  boost::system::error_code ec;
  const auto body = json::parse(envelope.body, ec);
  const auto* object = ec ? nullptr : body.if_object();
  const auto* message = object ? object->if_contains("message") : nullptr;
  const auto* id = message && message->is_object() ? message->as_object().if_contains("message_id") : nullptr;
  if (id == nullptr || !id->is_string()) {
    spdlog::warn(
        "stream: dropped a live message for {} that is not {{\"type\":\"message\",\"message\":{{...}}}}",
        user);
    return true;
  }
  std::vector<std::shared_ptr<Socket>> targets;
  {
    std::lock_guard lock(mu_);
    auto found = users_.find(user);
    if (found != users_.end()) targets.assign(found->second.sockets.begin(), found->second.sockets.end());
  }
  const std::string message_id(id->get_string());
  for (const auto& socket : targets) socket->live(message_id, envelope.body);
  return true;
}

}  // namespace intercomm::gateway
