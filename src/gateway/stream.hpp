// Live deliveries to WebSockets: GET /v1/stream. Binds this gateway's queue on
// inter_comm.live while a user has sockets here, numbers nothing itself: every
// frame carries its seq in the user's inbox, and each socket sends strictly
// increasing seqs with no hole, filling holes from the inbox.
#pragma once

#include "bus/bus.hpp"
#include "bus/rpc_client.hpp"
#include "gateway/websocket.hpp"

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace intercomm::gateway {

struct StreamOptions {
  std::chrono::milliseconds rpc_timeout{5000};
  std::size_t page = 100;  // messages per catch-up page (list_messages also bounds a page by bytes)
  // Frames handed to a socket and not yet written to the client. Catching up
  // waits for them to drop to `low_water` before reading the next page; live
  // frames that would pass `max_unwritten` mean the client reads too slowly:
  // the socket is closed with 1013 and the seq to resume from.
  std::size_t max_unwritten = 256;
  std::size_t low_water = 32;
  // Live frames kept while a socket catches up or waits for a hole to fill;
  // past this they are dropped and read from the inbox instead.
  std::size_t max_held = 1024;
  // A hole in the live seqs (a frame overtook another) waits this long for
  // the missing frame before it is filled from the inbox.
  std::chrono::milliseconds gap_wait{200};
};

// Where a socket starts: after a seq, after a message id of the user's inbox,
// or (neither) from now on.
struct StreamCursor {
  std::optional<std::uint64_t> after_seq;
  std::optional<std::string> after_id;
};

// What a socket receives, one JSON object per text frame:
//   {"type":"message","seq":N,"message":{message_id,sender,receiver,body,created_at}}
//     for every message the user sends or receives (all of the user's sockets,
//     on every gateway: multi-device); N is its seq in the user's inbox, and
//     the frames of one socket have seqs N, N+1, N+2 ... with no hole and no
//     repeat, whatever order the bus brought them in;
//   {"type":"replayed","count":N} once the messages after the cursor were sent
//     (only when a cursor was given);
//   {"type":"live","seq":S} once the socket is caught up (S: the last seq sent,
//     or the inbox's last seq when there was no cursor): from here on nothing
//     is missed;
//   {"type":"typing","from":U} and the answers to frames the client sent
//     (gateway/frames.hpp): not numbered, never replayed.
// With a cursor the socket first gets, oldest first and paced by what the
// client reads, every message of the inbox after it; then the live ones.
// Close codes: 1008 for a cursor past the end of the inbox or not in it; 1013
// when the client reads too slowly or a catch-up could not be read, with
// "resume with after_seq=N" in the reason (N: the last seq written to the
// client). Thread-safe.
class StreamHub : public std::enable_shared_from_this<StreamHub> {
 public:
  StreamHub(bus::Bus& bus, StreamOptions options);

  // For RpcClient's intercept: takes live deliveries (routing key user.<id>)
  // off the reply queue; false for anything else.
  bool deliver(bus::Envelope& envelope);

  // Needed for catch-ups; set once, before serving.
  void set_rpc(bus::RpcClient& rpc) { rpc_ = &rpc; }

  // What a client sends on its socket: one text frame of `user`'s socket
  // (opened with `request_id`); `reply` sends one frame back on that socket
  // (nothing once it closed); `done` must be called once the frame is dealt
  // with (a send: once it is queued or refused): a socket's next frame waits
  // for it. Unset: frames are ignored. Set once, before serving.
  using FrameHandler =
      std::function<void(const std::string& user, const std::string& request_id, std::string_view text,
                         std::function<void(std::string)> reply, std::function<void()> done)>;
  void set_frame_handler(FrameHandler handler) { frames_ = std::move(handler); }

  // A handler for a new socket of `user`.
  std::shared_ptr<WsHandler> open(std::string user, StreamCursor cursor, std::string request_id);

  std::size_t sockets() const;

  // After the bus reconnected (live frames published meanwhile are lost):
  // every open socket reads its inbox after the last seq it sent, then goes
  // on live. Nothing for the client to do.
  void resync();

 private:
  class Socket;
  friend class Socket;

  struct UserSockets {
    std::set<std::shared_ptr<Socket>> sockets;
    bool bound = false;
    std::set<std::shared_ptr<Socket>> waiting_for_bind;
  };

  void attach(const std::shared_ptr<Socket>& socket);
  std::vector<std::shared_ptr<Socket>> sockets_of(const std::string& user) const;
  void detach(const std::shared_ptr<Socket>& socket);

  bus::Bus& bus_;
  bus::RpcClient* rpc_ = nullptr;
  FrameHandler frames_;
  StreamOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, UserSockets> users_;
};

}  // namespace intercomm::gateway
