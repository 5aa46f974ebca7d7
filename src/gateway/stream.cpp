// The stream hub: users' sockets and their live bindings; each socket's seq
// order (catch-up from the inbox, holes filled, repeats dropped) is in
// stream_socket.hpp.
#include "gateway/stream.hpp"

#include "bus/topology.hpp"
#include "gateway/stream_socket.hpp"
#include "jobs/jobs.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>

namespace intercomm::gateway {
namespace {

std::optional<std::uint64_t> seq_in(const json::value& value) {
  if (value.is_uint64()) return value.get_uint64();
  if (value.is_int64() && value.get_int64() > 0) return static_cast<std::uint64_t>(value.get_int64());
  return std::nullopt;
}

}  // namespace

StreamHub::StreamHub(bus::Bus& bus, StreamOptions options) : bus_(bus), options_(options) {}

std::shared_ptr<WsHandler> StreamHub::open(std::string user, StreamCursor cursor, std::string request_id) {
  return std::make_shared<Socket>(shared_from_this(), std::move(user), std::move(cursor),
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
  bus_.bind_reply_queue(std::string(bus::kLiveExchange), bus::live_key(user), true,
                        [self = shared_from_this(), user](core::Result<void> result) {
                          std::set<std::shared_ptr<Socket>> waiting;
                          {
                            std::lock_guard lock(self->mu_);
                            auto found = self->users_.find(user);
                            if (found == self->users_.end()) {
                              // Every socket left while binding: take the binding back.
                              if (result) {
                                self->bus_.bind_reply_queue(std::string(bus::kLiveExchange), bus::live_key(user),
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
    bus_.bind_reply_queue(std::string(bus::kLiveExchange), bus::live_key(socket->user()), false,
                          [user = socket->user()](core::Result<void> result) {
                            if (!result)
                              spdlog::warn("stream: cannot unbind {}: {}", user, result.error().message);
                          });
    // The user's last socket here: when they were last seen (presence).
    const jobs::RecordLastSeen seen{socket->user(), core::format_rfc3339(std::chrono::system_clock::now())};
    bus_.publish(bus::kExchange, jobs::envelope(seen), options_.rpc_timeout, [user = seen.user](bus::PublishStatus status) {
      if (status != bus::PublishStatus::confirmed && status != bus::PublishStatus::unroutable) {
        spdlog::debug("stream: last seen of {} not recorded: {}", user, bus::to_string(status));
      }
    });
  }
}

void StreamHub::resync() {
  std::vector<std::shared_ptr<Socket>> sockets;
  {
    std::lock_guard lock(mu_);
    for (const auto& [user, entry] : users_) sockets.insert(sockets.end(), entry.sockets.begin(), entry.sockets.end());
  }
  if (!sockets.empty()) spdlog::info("stream: the bus reconnected; {} sockets read what they missed", sockets.size());
  for (const auto& socket : sockets) socket->resync();
}

bool StreamHub::deliver(bus::Envelope& envelope) {
  const std::string_view key = envelope.routing_key;
  if (!key.starts_with(bus::kLivePrefix)) return false;
  const std::string user(key.substr(bus::kLivePrefix.size()));
  boost::system::error_code ec;
  const auto body = json::parse(envelope.body, ec);
  const auto* object = ec ? nullptr : body.if_object();
  const auto* seq_value = object ? object->if_contains("seq") : nullptr;
  const auto seq = seq_value ? seq_in(*seq_value) : std::nullopt;
  const auto* type = object ? object->if_contains("type") : nullptr;
  if (type != nullptr && type->is_string() && type->get_string() == jobs::kProbeType) return true;  // presence
  if (type != nullptr && type->is_string() && jobs::is_signal(type->get_string())) {
    // A signal, not a message (its seq, if any, is not the socket's number):
    // to the user's sockets as it comes.
    for (const auto& socket : sockets_of(user)) socket->send_unnumbered(envelope.body);
    return true;
  }
  if (!seq || !object->contains("message")) {
    spdlog::warn("stream: dropped a live frame for {} that is not {{\"type\":\"message\",\"seq\":N,...}}",
                 user);
    return true;
  }
  for (const auto& socket : sockets_of(user)) socket->live(*seq, envelope.body);
  return true;
}

std::vector<std::shared_ptr<StreamHub::Socket>> StreamHub::sockets_of(const std::string& user) const {
  std::lock_guard lock(mu_);
  auto found = users_.find(user);
  if (found == users_.end()) return {};
  return {found->second.sockets.begin(), found->second.sockets.end()};
}

}  // namespace intercomm::gateway
