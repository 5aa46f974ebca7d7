// Live deliveries to WebSockets: GET /v1/stream. Binds this gateway's queue on
// inter_comm.live while a user has sockets here, and replays what a client missed.
#pragma once

#include "bus/bus.hpp"
#include "bus/rpc_client.hpp"
#include "gateway/websocket.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace intercomm::gateway {

struct StreamOptions {
  std::chrono::milliseconds rpc_timeout{5000};
  std::size_t replay_page = 100;
  std::size_t max_replay_pages = 50;  // at most 5,000 messages replayed; then {"type":"replay_truncated"}
};

// What a socket receives, one JSON object per text frame:
//   {"type":"message","message":{message_id,sender,receiver,body,created_at}}
//     for every message the user sends or receives (all of the user's sockets,
//     on every gateway: multi-device);
//   {"type":"replayed","count":N} once the messages after ?after= were sent
//     (only when ?after= was given);
//   {"type":"live"} once this gateway receives the user's live messages (and
//     the replay, if any, is done): from here on nothing is missed;
//   {"type":"replay_truncated"} when more than the replay limit was missed.
// With ?after=<id>, the socket first gets, oldest first, every message of the
// user's inbox after that id, then the live ones: no gap and no duplicate at
// the seam (live messages arriving during the replay wait, and those already
// replayed are dropped). Thread-safe.
class StreamHub : public std::enable_shared_from_this<StreamHub> {
 public:
  StreamHub(bus::Bus& bus, StreamOptions options);

  // For RpcClient's intercept: takes live deliveries (routing key user.<id>)
  // off the reply queue; false for anything else.
  bool deliver(bus::Envelope& envelope);

  // Needed for replays; set once, before serving.
  void set_rpc(bus::RpcClient& rpc) { rpc_ = &rpc; }

  // A handler for a new socket of `user`; `after` is the replay cursor.
  std::shared_ptr<WsHandler> open(std::string user, std::optional<std::string> after, std::string request_id);

  std::size_t sockets() const;

 private:
  class Socket;
  friend class Socket;

  struct UserSockets {
    std::set<std::shared_ptr<Socket>> sockets;
    bool bound = false;
    std::set<std::shared_ptr<Socket>> waiting_for_bind;
  };

  void attach(const std::shared_ptr<Socket>& socket);
  void detach(const std::shared_ptr<Socket>& socket);

  bus::Bus& bus_;
  bus::RpcClient* rpc_ = nullptr;
  StreamOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, UserSockets> users_;
};

}  // namespace intercomm::gateway
