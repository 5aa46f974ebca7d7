// Internal to the gateway (included by stream.cpp only): one socket of the
// stream hub, and everything that keeps its frames in seq order.
#pragma once

#include "gateway/stream.hpp"
#include "jobs/jobs.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/json/serialize.hpp>

#include <list>
#include <map>

namespace intercomm::gateway {

namespace json = boost::json;

// One socket. Everything it sends is ordered by seq: `sent_` is the last seq
// handed to the connection; a live frame with a higher seq waits in `held_`
// until every seq before it was sent; a hole that stays open, or frames
// dropped because too many waited, are read from the inbox (catch-up), paced
// by what the client has read (`unwritten_`).
class StreamHub::Socket : public WsHandler, public std::enable_shared_from_this<Socket> {
 public:
  Socket(std::shared_ptr<StreamHub> hub, std::string user, StreamCursor cursor, std::string request_id)
      : hub_(std::move(hub)),
        options_(hub_->options_),
        user_(std::move(user)),
        cursor_(std::move(cursor)),
        request_id_(std::move(request_id)) {}

  const std::string& user() const { return user_; }

  void on_open(std::shared_ptr<WsConnection> connection) override {
    {
      std::lock_guard lock(mu_);
      connection_ = std::move(connection);
    }
    hub_->attach(shared_from_this());
  }

  // The client's frames are handled one at a time, in the order they came:
  // a send is queued on the bus before the next frame is looked at, so one
  // socket's sends keep their order. Frames waiting past kMaxInbound close
  // the socket (a client must wait for answers, not flood).
  void on_text(std::string_view text) override {
    if (!hub_->frames_) return;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      if (inbound_.size() >= kMaxInbound) {
        close_locked(kClosePolicyViolation, "too many frames waiting for an answer", false);
        return;
      }
      inbound_.emplace_back(text);
      if (handling_) return;
      handling_ = true;
    }
    handle_next();
  }

  void handle_next() {
    std::string text;
    {
      std::lock_guard lock(mu_);
      if (inbound_.empty() || closed_) {
        handling_ = false;
        return;
      }
      text = std::move(inbound_.front());
      inbound_.pop_front();
    }
    hub_->frames_(
        user_, request_id_, text,
        [weak = weak_from_this()](std::string answer) {
          if (auto self = weak.lock()) self->send_unnumbered(std::move(answer));
        },
        [weak = weak_from_this()] {
          if (auto self = weak.lock()) self->handle_next();
        });
  }

  // An answer to a frame the client sent, or a signal (typing): not part of
  // the numbered stream.
  void send_unnumbered(std::string text) {
    std::lock_guard lock(mu_);
    if (closed_ || !connection_) return;
    connection_->send(std::move(text));
  }

  void on_close() override {
    {
      std::lock_guard lock(mu_);
      connection_.reset();
      closed_ = true;
      held_.clear();
    }
    hub_->detach(shared_from_this());
  }

  // The live binding is in place: find where the inbox ends, then catch up
  // from the cursor (or go live from the end).
  void bound(bool ok) {
    if (!ok) {
      std::lock_guard lock(mu_);
      close_locked(kCloseTryAgainLater, "live delivery unavailable; resume with after_seq=");
      return;
    }
    jobs::ListMessages head;
    head.user = user_;
    head.limit = 1;
    call(head, [self = shared_from_this()](bus::RpcResult result) { self->on_head(std::move(result)); });
  }

  // Live frames may have been lost (the bus reconnected): read the inbox
  // after sent_ now, or once the read or the wait under way is done.
  void resync() {
    {
      std::lock_guard lock(mu_);
      if (closed_ || !started_) return;  // not started: its head query comes after the new binding
      if (catching_up_ || waiting_room_) {
        overflowed_ = true;  // drain_locked reads the inbox again when they end
        return;
      }
      catching_up_ = true;
    }
    fetch_page();
  }

  // A live frame for this socket's user (`seq` already read out of `text`).
  void live(std::uint64_t seq, const std::string& text) {
    bool fetch = false;
    {
      std::lock_guard lock(mu_);
      if (closed_ || seq <= sent_) return;  // a repeat (a redelivered hop, two MDAs)
      if (held_.size() >= options_.max_held) {
        overflowed_ = true;  // dropped: read from the inbox once the hole or the catch-up is done
        return;
      }
      held_.emplace(seq, text);
      if (started_ && !catching_up_ && !waiting_room_) fetch = drain_locked();
    }
    if (fetch) fetch_page();
  }

 private:
  using Done = std::function<void(bus::RpcResult)>;

  void call(const jobs::ListMessages& job, Done done) {
    hub_->rpc_->call(
        std::string(jobs::ListMessages::name), job.encode(), options_.rpc_timeout,
        {{std::string(bus::kRequestIdHeader), request_id_}, {std::string(bus::kUserHeader), user_}},
        std::move(done));
  }

  void on_head(bus::RpcResult result) {
    bool fetch = false;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      auto head = result ? jobs::ListMessages::decode_result(*result) : result.error();
      if (!head) {
        close_locked(kCloseTryAgainLater, "the inbox could not be read; resume with after_seq=");
        return;
      }
      const std::uint64_t last = head->messages.empty() ? 0 : head->messages.front().seq;
      started_ = true;
      if (cursor_.after_seq && *cursor_.after_seq > last) {
        close_locked(
            kClosePolicyViolation,
            fmt::format("after_seq {} is past the end of this inbox (last seq {})", *cursor_.after_seq, last),
            false);
        return;
      }
      if (cursor_.after_seq || cursor_.after_id) {
        sent_ = written_ = cursor_.after_seq.value_or(0);
        catching_up_ = backlog_ = true;
        fetch = true;
      } else {
        sent_ = written_ = last;
        fetch = announce_live_locked();
      }
    }
    if (fetch) fetch_page();
  }

  // Reads the page after sent_ (the first one after the message id, when the
  // cursor is one and not resolved yet).
  void fetch_page() {
    jobs::ListMessages job;
    job.user = user_;
    job.limit = options_.page;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      catching_up_ = true;
      if (cursor_.after_id && !resolved_) {
        job.after = *cursor_.after_id;
      } else {
        job.after_seq = sent_;
      }
    }
    call(job, [self = shared_from_this()](bus::RpcResult result) { self->on_page(std::move(result)); });
  }

  void on_page(bus::RpcResult result) {
    bool fetch = false;
    jobs::RecordDelivered delivered;
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
      auto page = result ? jobs::ListMessages::decode_result(*result) : result.error();
      if (!page) {
        if (!result && result.error().code == core::ErrorCode::invalid_params && !resolved_) {
          close_locked(kClosePolicyViolation, result.error().message, false);  // ?after= not in this inbox
        } else {
          close_locked(kCloseTryAgainLater, "catching up failed; resume with after_seq=");
        }
        return;
      }
      if (!resolved_ && cursor_.after_id) {
        resolved_ = true;
        sent_ = written_ = page->after_seq.value_or(0);
      }
      for (auto& item : page->messages) {
        if (item.seq <= sent_) continue;
        note_delivered(item.message, delivered);
        send_locked(json::serialize(
                        json::object{{"type", "message"}, {"seq", item.seq}, {"message", std::move(item.message)}}),
                    item.seq);
        sent_ = item.seq;
        if (!announced_) ++replayed_;
      }
      if (!page->next_seq) {
        catching_up_ = false;
        fetch = announced_ ? drain_locked() : announce_live_locked();
      } else {
        fetch = next_page_or_wait_locked();
      }
    }
    if (!delivered.messages.empty()) report_delivered(delivered);
    if (fetch) fetch_page();
  }

  // A message from someone else, read from the inbox for this socket, is
  // delivered (mda/receipts.hpp): the MDA keeps the first time and tells its
  // sender. Live frames were counted by the MDA when they were routed here.
  void note_delivered(const json::value& message, jobs::RecordDelivered& delivered) const {
    const auto* object = message.if_object();
    if (object == nullptr || object->contains("retracted_at")) return;
    const auto* id = object->if_contains("message_id");
    const auto* sender = object->if_contains("sender");
    const auto* receiver = object->if_contains("receiver");
    if (id == nullptr || sender == nullptr || receiver == nullptr || !id->is_string() || !sender->is_string() ||
        *receiver != json::value(user_) || *sender == *receiver) {
      return;
    }
    delivered.messages.push_back({std::string(id->get_string()), std::string(sender->get_string()), user_, {}});
  }

  // Best effort, like the live path's receipt: a job not queued is logged.
  void report_delivered(const jobs::RecordDelivered& delivered) {
    hub_->bus_.publish(bus::kExchange, jobs::envelope(delivered), options_.rpc_timeout,
                       [user = user_](bus::PublishStatus status) {
                         if (status != bus::PublishStatus::confirmed) {
                           spdlog::warn("stream: the delivery receipts of {}'s catch-up were not queued: {}", user,
                                        bus::to_string(status));
                         }
                       });
  }

  // True when the next page may be read now; else it waits for the client.
  bool next_page_or_wait_locked() {
    if (unwritten_ > options_.low_water) {
      waiting_room_ = true;
      return false;
    }
    return true;
  }

  // Caught up for the first time: say so, then send what waited meanwhile.
  bool announce_live_locked() {
    if (cursor_.after_seq || cursor_.after_id) {
      send_locked(json::serialize(json::object{{"type", "replayed"}, {"count", replayed_}}), 0);
    }
    send_locked(json::serialize(json::object{{"type", "live"}, {"seq", sent_}}), 0);
    announced_ = true;
    return drain_locked();
  }

  // Sends the held frames that continue sent_. Returns true when the inbox
  // must be read (frames were dropped); arms the hole timer when one stays.
  bool drain_locked() {
    while (!held_.empty()) {
      auto first = held_.begin();
      if (first->first <= sent_) {
        held_.erase(first);
        continue;
      }
      if (first->first != sent_ + 1) break;  // a hole
      if (unwritten_ >= options_.max_unwritten) {
        if (backlog_) {
          waiting_room_ = true;  // still catching up: wait for the client
          return false;
        }
        too_slow_locked();
        return false;
      }
      send_locked(std::move(first->second), first->first);
      sent_ = first->first;
      held_.erase(first);
    }
    if (overflowed_) {
      overflowed_ = false;
      catching_up_ = true;
      return true;
    }
    if (held_.empty()) {
      backlog_ = false;
    } else if (!hole_timer_ && connection_) {
      hole_timer_ = true;
      connection_->after(options_.gap_wait, [self = shared_from_this()] { self->on_hole_timer(); });
    }
    return false;
  }

  void on_hole_timer() {
    {
      std::lock_guard lock(mu_);
      hole_timer_ = false;
      if (closed_ || catching_up_ || waiting_room_ || held_.empty() || held_.begin()->first <= sent_ + 1)
        return;
      spdlog::debug("stream: {} missed seq {}..{}; reading them from the inbox", user_, sent_ + 1,
                    held_.begin()->first - 1);
      catching_up_ = true;
    }
    fetch_page();
  }

  void on_written(std::uint64_t seq) {
    bool fetch = false;
    {
      std::lock_guard lock(mu_);
      --unwritten_;
      written_ = std::max(written_, seq);
      if (closed_ || !waiting_room_ || unwritten_ > options_.low_water) return;
      waiting_room_ = false;
      fetch = catching_up_ ? true : drain_locked();
    }
    if (fetch) fetch_page();
  }

  // `seq` 0: a frame that is not a message.
  void send_locked(std::string text, std::uint64_t seq) {
    if (!connection_) return;
    ++unwritten_;
    connection_->send(std::move(text), [self = shared_from_this(), seq] { self->on_written(seq); });
  }

  void too_slow_locked() { close_locked(kCloseTryAgainLater, "too slow: resume with after_seq="); }

  // Closes with `reason`, followed (when `with_seq`) by the last seq the
  // client gets: what was written, and the frame being written when the
  // close is decided (message frames go out in seq order). Before that is
  // known, the client resumes with its own cursor.
  void close_locked(std::uint16_t code, std::string reason, bool with_seq = true) {
    closed_ = true;
    held_.clear();
    if (!connection_) return;
    if (!with_seq) {
      connection_->close(code, std::move(reason));
    } else if (!started_ || (cursor_.after_id && !resolved_)) {
      connection_->close(code, reason.substr(0, reason.find(';')) + "; reconnect with the same cursor");
    } else {
      connection_->close_with(code, [self = shared_from_this(), reason = std::move(reason)] {
        std::lock_guard lock(self->mu_);
        return reason + std::to_string(self->written_ + (self->unwritten_ > 0 ? 1 : 0));
      });
    }
  }

  std::shared_ptr<StreamHub> hub_;
  const StreamOptions options_;
  const std::string user_;
  const StreamCursor cursor_;
  const std::string request_id_;

  std::mutex mu_;
  std::shared_ptr<WsConnection> connection_;
  bool closed_ = false;
  bool started_ = false;       // the inbox's end is known; sent_ is meaningful
  bool resolved_ = false;      // an ?after=<id> cursor was turned into a seq
  bool catching_up_ = false;   // reading the inbox: live frames wait in held_
  bool waiting_room_ = false;  // paused until the client read enough
  bool announced_ = false;     // {"type":"live"} was sent
  bool backlog_ = false;       // the first catch-up and what waited during it are still going out
  bool overflowed_ = false;    // live frames were dropped: read them from the inbox
  bool hole_timer_ = false;
  std::uint64_t sent_ = 0;     // the last seq handed to the connection
  std::uint64_t written_ = 0;  // the last seq written to the client
  std::size_t unwritten_ = 0;
  std::size_t replayed_ = 0;
  std::map<std::uint64_t, std::string> held_;
  static constexpr std::size_t kMaxInbound = 256;
  // The client's frames not yet handled: a list, which (unlike a deque) holds
  // no memory while empty — most sockets, most of the time.
  std::list<std::string> inbound_;
  bool handling_ = false;            // one of them is being handled
};

}  // namespace intercomm::gateway
