// WebSocket sessions: a read loop as a coroutine, writes as a queue drained one
// frame at a time, everything on the connection's strand.
#include "gateway/ws_session.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/websocket.hpp>

#include <list>
#include <iterator>
#include <mutex>

namespace intercomm::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using Stream = websocket::stream<beast::tcp_stream>;

// The socket's state; touched only on its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(beast::tcp_stream stream, std::size_t queue_limit)
      : ws_(std::move(stream)), queue_limit_(queue_limit) {}

  Stream& ws() { return ws_; }
  bool closed() const { return closed_; }
  void mark_closed() { closed_ = true; }

  void send(std::string text, std::function<void()> written) {
    if (closed_ || closing_) return;
    if (queue_.size() >= queue_limit_) {
      close(kCloseTryAgainLater, "too slow: the send queue overflowed");
      return;
    }
    queue_.push_back(Frame{std::move(text), std::move(written)});
    if (!writing_) write_next();
  }

  void close(std::uint16_t code, std::string reason) {
    if (closed_ || closing_) return;
    closing_ = true;
    if (reason.size() > 123) reason.resize(123);  // RFC 6455: a close frame's payload is at most 125 bytes
    close_reason_ = websocket::close_reason(static_cast<websocket::close_code>(code), reason);
    // Frames not yet started are dropped; the one being written (the front)
    // must live until its write completes.
    if (writing_) {
      queue_.erase(std::next(queue_.begin()), queue_.end());
    } else {
      queue_.clear();
      do_close();
    }
  }

 private:
  void write_next() {
    writing_ = true;
    ws_.text(true);
    ws_.async_write(asio::buffer(queue_.front().text),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      self->writing_ = false;
                      std::function<void()> written;
                      if (!self->queue_.empty()) {
                        written = std::move(self->queue_.front().written);
                        self->queue_.pop_front();
                      }
                      if (ec) {
                        self->closed_ = true;
                        return;
                      }
                      if (written) written();
                      if (self->closing_) {
                        self->do_close();
                      } else if (!self->queue_.empty()) {
                        self->write_next();
                      }
                    });
  }

  void do_close() {
    ws_.async_close(close_reason_, [self = shared_from_this()](beast::error_code) { self->closed_ = true; });
  }

  struct Frame {
    std::string text;
    std::function<void()> written;
  };

  Stream ws_;
  std::size_t queue_limit_;
  std::list<Frame> queue_;  // a list: empty (most of the time), it owns no memory; a deque does
  bool writing_ = false;
  bool closing_ = false;
  bool closed_ = false;
  websocket::close_reason close_reason_;
};

// What handlers hold: reaches the session while it lives, through its strand.
class Connection : public WsConnection {
 public:
  explicit Connection(const std::shared_ptr<Session>& session)
      : session_(session), executor_(session->ws().get_executor()) {}

  using WsConnection::send;

  bool send(std::string text, std::function<void()> written) override {
    auto session = session_.lock();
    if (!session) return false;
    asio::post(executor_, [session, text = std::move(text), written = std::move(written)]() mutable {
      session->send(std::move(text), std::move(written));
    });
    return true;
  }

  void after(std::chrono::milliseconds delay, std::function<void()> fn) override {
    auto session = session_.lock();
    if (!session) return;
    auto timer = std::make_shared<asio::steady_timer>(executor_, delay);
    timer->async_wait([timer, weak = session_, fn = std::move(fn)](beast::error_code ec) {
      auto alive = weak.lock();
      if (!ec && alive && !alive->closed()) fn();
    });
  }

  void close(std::uint16_t code, std::string reason) override {
    close_with(code, [reason = std::move(reason)] { return reason; });
  }

  void close_with(std::uint16_t code, std::function<std::string()> reason) override {
    auto session = session_.lock();
    if (!session) return;
    asio::post(executor_, [session, code, reason = std::move(reason)] { session->close(code, reason()); });
  }

 private:
  std::weak_ptr<Session> session_;
  asio::any_io_executor executor_;
};

}  // namespace

asio::awaitable<void> run_websocket(beast::tcp_stream stream,
                                    beast::http::request<beast::http::string_body> request, WsUpgrade upgrade,
                                    WsOptions options) {
  stream.expires_never();  // the websocket stream keeps its own timeouts
  auto session = std::make_shared<Session>(std::move(stream), options.queue_limit);
  auto& ws = session->ws();
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::seconds(10);
  timeouts.idle_timeout = options.idle_timeout;
  timeouts.keep_alive_pings = true;
  ws.set_option(timeouts);
  ws.read_message_max(options.max_message_bytes);
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& response) { response.set(beast::http::field::server, "intercomm"); }));
  auto [accepted] = co_await ws.async_accept(request, asio::as_tuple(asio::use_awaitable));
  if (accepted) co_return;
  request = {};  // answered: its headers need not stay for the socket's life

  auto connection = std::make_shared<Connection>(session);
  if (options.metrics) options.metrics->websocket_opened();
  if (options.track) options.track(connection, true);
  upgrade.handler->on_open(connection);

  // Closes the socket when the token it was opened with expires.
  std::shared_ptr<asio::steady_timer> expiry;
  if (upgrade.close_at) {
    expiry = std::make_shared<asio::steady_timer>(ws.get_executor());
    expiry->expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(std::max(
        *upgrade.close_at - std::chrono::system_clock::now(), std::chrono::system_clock::duration::zero())));
    expiry->async_wait([session](beast::error_code ec) {
      if (!ec) session->close(kClosePolicyViolation, "token expired");
    });
  }

  beast::flat_buffer buffer;
  while (true) {
    auto [ec, bytes] = co_await ws.async_read(buffer, asio::as_tuple(asio::use_awaitable));
    if (ec) break;
    if (ws.got_text()) {
      const auto data = buffer.data();
      upgrade.handler->on_text(std::string_view(static_cast<const char*>(data.data()), data.size()));
    }
    buffer.consume(buffer.size());
    buffer.shrink_to_fit();  // clients send little; an idle socket holds no read buffer
  }
  session->mark_closed();
  if (expiry) expiry->cancel();
  upgrade.handler->on_close();
  if (options.track) options.track(connection, false);
  if (options.metrics) options.metrics->websocket_closed();
}

}  // namespace intercomm::gateway
