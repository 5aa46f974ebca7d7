// WebSocket sessions as callbacks on the connection's strand: a read loop, and
// writes as a queue drained one frame at a time. No coroutine frame and no read
// buffer stay with an idle socket: it holds Beast's stream and a few bytes.
#include "gateway/ws_session.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>
#include <array>
#include <iterator>
#include <list>
#include <optional>

namespace intercomm::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Stream = websocket::stream<tcp::socket>;
using Request = beast::http::request<beast::http::string_body>;

// Bytes read at a time while no message is under way (an idle socket keeps
// these), and at most while one is (read straight into the message).
constexpr std::size_t kIdleRead = 64;
constexpr std::size_t kMessageRead = 4096;

class Connection;

// The socket's state; touched only on its strand.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, WsUpgrade upgrade, WsOptions options, std::function<void()> ended)
      : ws_(std::move(socket)),
        handler_(std::move(upgrade.handler)),
        close_at_(upgrade.close_at),
        options_(std::move(options)),
        ended_(std::move(ended)) {}

  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  ~Session() {
    if (ended_) ended_();
  }

  void start(std::unique_ptr<Request> request);

  bool closed() const { return closed_; }
  Stream::executor_type executor() { return ws_.get_executor(); }

  void send(std::string text, std::function<void()> written) {
    if (closed_ || closing_) return;
    if (queue_.size() >= options_.queue_limit) {
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
    close_code_ = code;
    close_text_ = std::move(reason);
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
  void opened();
  void read_next();
  void on_read(beast::error_code ec, std::size_t bytes);
  void finished();

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
    const websocket::close_reason reason(static_cast<websocket::close_code>(close_code_), close_text_);
    ws_.async_close(reason, [self = shared_from_this()](beast::error_code) { self->closed_ = true; });
  }

  struct Frame {
    std::string text;
    std::function<void()> written;
  };

  Stream ws_;
  std::shared_ptr<WsHandler> handler_;
  std::optional<std::chrono::system_clock::time_point> close_at_;
  WsOptions options_;
  std::function<void()> ended_;
  std::shared_ptr<WsConnection> connection_;  // what handlers hold; set once open
  std::optional<asio::steady_timer> expiry_;  // closes the socket when its token expires
  std::array<char, kIdleRead> idle_read_;
  std::string message_;  // the text message being read (empty between messages)
  std::list<Frame> queue_;  // a list: empty (most of the time), it owns no memory; a deque does
  bool writing_ = false;
  bool closing_ = false;
  bool closed_ = false;
  std::uint16_t close_code_ = kCloseNormal;
  std::string close_text_;  // not a close_reason: its 123-byte array would stay with every socket
};

// What handlers hold: reaches the session while it lives, through its strand.
class Connection : public WsConnection {
 public:
  explicit Connection(const std::shared_ptr<Session>& session)
      : session_(session), executor_(session->executor()) {}

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
  Stream::executor_type executor_;
};

void Session::start(std::unique_ptr<Request> request) {
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = std::chrono::seconds(10);
  timeouts.idle_timeout = options_.idle_timeout;
  timeouts.keep_alive_pings = true;
  ws_.set_option(timeouts);
  ws_.read_message_max(options_.max_message_bytes);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& response) { response.set(beast::http::field::server, "intercomm"); }));
  // The request stays until the handshake is answered, then goes: an open
  // socket keeps nothing of the HTTP exchange.
  auto& answered = *request;
  ws_.async_accept(answered, [self = shared_from_this(), request = std::move(request)](beast::error_code ec) {
    if (!ec) self->opened();
  });
}

void Session::opened() {
  connection_ = std::make_shared<Connection>(shared_from_this());
  if (options_.metrics) options_.metrics->websocket_opened();
  if (options_.track) options_.track(connection_, true);
  handler_->on_open(connection_);
  if (close_at_) {
    expiry_.emplace(ws_.get_executor());
    expiry_->expires_after(std::chrono::duration_cast<asio::steady_timer::duration>(
        std::max(*close_at_ - std::chrono::system_clock::now(), std::chrono::system_clock::duration::zero())));
    expiry_->async_wait([weak = std::weak_ptr<Session>(shared_from_this())](beast::error_code ec) {
      if (auto self = weak.lock(); self && !ec) self->close(kClosePolicyViolation, "token expired");
    });
  }
  read_next();
}

void Session::read_next() {
  auto done = [self = shared_from_this()](beast::error_code ec, std::size_t bytes) { self->on_read(ec, bytes); };
  if (message_.empty()) {
    ws_.async_read_some(asio::buffer(idle_read_), std::move(done));
    return;
  }
  // A message under way: read the rest of it into its own tail.
  const std::size_t had = message_.size();
  message_.resize(had + kMessageRead);
  ws_.async_read_some(asio::buffer(message_.data() + had, kMessageRead), std::move(done));
}

void Session::on_read(beast::error_code ec, std::size_t bytes) {
  if (!message_.empty()) {
    message_.resize(message_.size() - kMessageRead + bytes);
  } else if (!ec) {
    message_.assign(idle_read_.data(), bytes);
  }
  if (ec) {
    finished();
    return;
  }
  if (!ws_.is_message_done()) {
    read_next();
    return;
  }
  if (ws_.got_text()) handler_->on_text(message_);
  std::string().swap(message_);  // clients send little; an idle socket holds no read buffer
  read_next();
}

void Session::finished() {
  closed_ = true;
  if (expiry_) expiry_->cancel();
  handler_->on_close();
  if (options_.track) options_.track(connection_, false);
  if (options_.metrics) options_.metrics->websocket_closed();
}

}  // namespace

void run_websocket(tcp::socket socket, Request request, WsUpgrade upgrade, WsOptions options,
                   std::function<void()> ended) {
  auto session = std::make_shared<Session>(std::move(socket), std::move(upgrade), std::move(options),
                                           std::move(ended));
  session->start(std::make_unique<Request>(std::move(request)));
}

}  // namespace intercomm::gateway
