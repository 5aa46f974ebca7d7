// Beast HTTP sessions as coroutines; the router answers through a callback.
#include "gateway/server.hpp"

#include "core/ids.hpp"
#include "core/logging.hpp"
#include "gateway/ws_session.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include <atomic>
#include <cerrno>
#include <cctype>
#include <future>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <tuple>

namespace intercomm::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using core::Error;
using core::ErrorCode;

constexpr auto kWriteTimeout = std::chrono::seconds(10);
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
constexpr std::size_t kFirstRead = 4096;

// Runs the router and resumes the coroutine with its response, on the
// coroutine's executor, whichever thread the responder is called from;
// `route` gets the route's name (for metrics).
template <class Token>
auto async_dispatch(const Router& router, const HttpRequest& request, std::string_view& route, Token&& token) {
  return asio::async_initiate<Token, void(HttpResponse)>(
      [&router, &request, &route](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        route = router.dispatch(request, [shared](HttpResponse response) {
          auto executor = asio::get_associated_executor(*shared);
          asio::post(executor,
                     [shared, response = std::move(response)]() mutable { (*shared)(std::move(response)); });
        });
      },
      token);
}

HttpRequest to_plain(http::request<http::string_body>&& request, const std::string& remote) {
  HttpRequest plain;
  plain.method = std::string(request.method_string());
  plain.target = std::string(request.target());
  for (const auto& field : request) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    plain.headers[name] = std::string(field.value());
  }
  plain.body = std::move(request.body());
  plain.remote = remote;
  return plain;
}

}  // namespace

struct HttpServer::Impl {
  Impl(const Router& r, ServerOptions o)
      : router(r), options(std::move(o)), io(static_cast<int>(options.threads)) {}

  // Runs on the acceptor's strand, as does close() in stop(): the acceptor is
  // never touched from two threads at once.
  asio::awaitable<void> accept_loop() {
    while (acceptor.is_open()) {
      // Each connection gets its own strand: its coroutine and the responders
      // that resume it never run concurrently.
      auto [ec, socket] = co_await acceptor.async_accept(asio::any_io_executor(asio::make_strand(io)),
                                                         asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (!acceptor.is_open()) co_return;
        // Out of file descriptors (or kernel memory): accepting again at once
        // would fail again at once and spin a core. Back off; the sockets
        // waiting in the listen queue are taken once descriptors are free.
        // By errno value: comparing with an error condition (errc::...) trips
        // UBSan's vptr check on Boost's constexpr categories.
        if (const int code = ec.value(); code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM) {
          if (options.metrics) options.metrics->accept_paused();
          const auto now = std::chrono::steady_clock::now();
          if (now - last_accept_warning > std::chrono::seconds(10)) {
            last_accept_warning = now;
            spdlog::warn("gateway: cannot accept ({}): out of file descriptors? pausing accepts for {} ms",
                         ec.message(), kAcceptBackoff.count());
          }
          asio::steady_timer pause(acceptor.get_executor(), kAcceptBackoff);
          co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
        }
        continue;
      }
      if (connections.load() >= options.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
        continue;
      }
      ++connections;
      auto executor = socket.get_executor();
      asio::co_spawn(executor, session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> write(beast::tcp_stream& stream, HttpResponse response, unsigned version,
                              bool keep_alive, const std::string& request_id) {
    http::response<http::string_body> out{static_cast<http::status>(response.status), version};
    for (auto& [name, value] : response.headers) out.set(name, value);
    out.set("X-Request-Id", request_id);
    out.body() = std::move(response.body);
    out.keep_alive(keep_alive);
    out.prepare_payload();
    stream.expires_after(kWriteTimeout);
    co_await http::async_write(stream, out, asio::as_tuple(asio::use_awaitable));
  }

  // The answer to a request that could not be read, or none for a closed or
  // silent peer.
  std::optional<HttpResponse> refusal_for(const beast::error_code& ec) const {
    if (ec == http::error::body_limit) {
      return error_response(Error::of(ErrorCode::invalid_request,
                                      fmt::format("body: larger than {} bytes", options.max_body_bytes)),
                            413);
    }
    if (ec == http::error::header_limit) {
      return error_response(Error::of(ErrorCode::invalid_request, "headers: too large"), 431);
    }
    if (ec.category() == beast::error_code(http::error::bad_target).category() &&
        ec != http::error::end_of_stream && ec != http::error::partial_message) {
      return error_response(Error::of(ErrorCode::invalid_request, "not a valid HTTP/1.1 request"), 400);
    }
    return std::nullopt;
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::error_code no_peer;
    const auto peer = socket.remote_endpoint(no_peer);
    const std::string remote = no_peer ? std::string() : peer.address().to_string();
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bool first = true;
    while (!stopping.load()) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      // A request must begin within the idle time (a new connection: the
      // header time), its head arrive within header_timeout of its first
      // byte (slowloris), and the whole of it within read_timeout.
      if (buffer.size() == 0) {
        stream.expires_after(first ? options.header_timeout : options.idle_timeout);
        auto [waited, got] = co_await stream.async_read_some(buffer.prepare(kFirstRead),
                                                             asio::as_tuple(asio::use_awaitable));
        if (waited) break;
        buffer.commit(got);
      }
      first = false;
      stream.expires_after(options.header_timeout);
      auto [ec, bytes] =
          co_await http::async_read_header(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      if (!ec) {
        stream.expires_after(options.read_timeout);
        std::tie(ec, bytes) =
            co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      }
      if (ec) {
        if (auto refusal = refusal_for(ec)) {
          if (options.metrics) options.metrics->request_refused(refusal->status);
          co_await write(stream, std::move(*refusal), 11, false, core::new_message_id());
        }
        break;
      }
      ++in_flight;
      const auto started = std::chrono::steady_clock::now();
      if (options.metrics) options.metrics->request_started();
      auto request = parser.release();
      const unsigned version = request.version();
      const bool keep_alive = request.keep_alive();
      if (beast::websocket::is_upgrade(request)) {
        std::optional<WsUpgrade> decision;
        {
          const HttpRequest plain = to_plain(http::request<http::string_body>(request), remote);
          if (const auto* upgrade = router.websocket(plain)) {
            --in_flight;
            if (options.metrics) options.metrics->request_finished(router.route_name(plain), 101, {});
            decision = (*upgrade)(plain);
          }
        }
        if (decision) {
          if (!decision->handler) {
            co_await write(stream, std::move(decision->refusal), version, false, core::new_message_id());
            break;
          }
          // The WebSocket runs on callbacks and this coroutine ends: an idle
          // socket keeps neither this frame (~2 KiB: the parser, the read
          // buffer) nor the stream's timers, nor anything of the HTTP exchange.
          run_websocket(stream.release_socket(), std::move(request), std::move(*decision), ws_options(),
                        [this] { --connections; });
          co_return;
        }
      }
      HttpRequest plain = to_plain(std::move(request), remote);
      std::string request_id = plain.header("x-request-id");
      if (request_id.empty() || request_id.size() > 128) {
        request_id = core::new_message_id();
        plain.headers["x-request-id"] = request_id;
      }
      stream.expires_never();  // the handler has its own deadlines
      std::string_view route;
      HttpResponse response = co_await async_dispatch(router, plain, route, asio::use_awaitable);
      if (options.metrics) {
        options.metrics->request_finished(route, response.status,
                                          std::chrono::steady_clock::now() - started);
      }
      // While draining, the connection closes after this answer.
      const bool keep = keep_alive && !stopping.load();
      co_await write(stream, std::move(response), version, keep, request_id);
      --in_flight;
      if (!keep) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    --connections;
  }

  WsOptions ws_options() {
    WsOptions ws;
    ws.queue_limit = options.ws_queue_limit;
    // A "send" frame carries what a POST body does.
    ws.max_message_bytes = std::max(ws.max_message_bytes, options.max_body_bytes);
    ws.metrics = options.metrics;
    ws.track = [this](const std::shared_ptr<WsConnection>& connection, bool open) {
      std::lock_guard lock(ws_mu);
      if (open) {
        websockets.insert(connection);
      } else {
        websockets.erase(connection);
      }
    };
    return ws;
  }

  // Closes every open WebSocket with 1001 and waits (up to `timeout`) for them to go.
  void close_websockets(std::chrono::milliseconds timeout) {
    std::set<std::shared_ptr<WsConnection>> open;
    {
      std::lock_guard lock(ws_mu);
      open = websockets;
    }
    for (const auto& connection : open) connection->close(kCloseGoingAway, "server stopping");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(ws_mu);
        if (websockets.empty()) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  const Router& router;
  ServerOptions options;
  asio::io_context io;
  std::mutex ws_mu;
  std::set<std::shared_ptr<WsConnection>> websockets;
  tcp::acceptor acceptor{asio::make_strand(io)};
  std::chrono::steady_clock::time_point last_accept_warning{};  // on the acceptor's strand
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
  std::atomic<std::size_t> in_flight{0};  // requests read and not yet answered
  std::atomic<bool> stopping{false};
  bool started = false;
  bool stopped = false;
};

HttpServer::HttpServer(const Router& router, ServerOptions options)
    : impl_(std::make_unique<Impl>(router, std::move(options))) {}

HttpServer::~HttpServer() {
  stop();
}

core::Result<std::uint16_t> HttpServer::start() {
  beast::error_code ec;
  const auto address = asio::ip::make_address(impl_->options.host, ec);
  if (ec)
    return Error::of(ErrorCode::invalid_params,
                     fmt::format("listen: '{}' is not an IP address", impl_->options.host));
  const tcp::endpoint endpoint(address, impl_->options.port);
  auto& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Error::of(ErrorCode::unavailable,
                     fmt::format("listen: cannot listen on {}:{}: {}", impl_->options.host,
                                 impl_->options.port, ec.message()));
  }
  const auto port = acceptor.local_endpoint().port();
  asio::co_spawn(acceptor.get_executor(), impl_->accept_loop(), asio::detached);
  for (unsigned i = 0; i < std::max(1U, impl_->options.threads); ++i) {
    impl_->threads.emplace_back([this] {
      core::logging::name_this_thread("http-io");
      impl_->io.run();
    });
  }
  impl_->started = true;
  return port;
}

void HttpServer::stop() {
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  impl_->stopping = true;
  std::promise<void> closed;
  asio::post(impl_->acceptor.get_executor(), [this, &closed] {
    beast::error_code ignored;
    impl_->acceptor.close(ignored);
    closed.set_value();
  });
  closed.get_future().wait();
  impl_->close_websockets(std::chrono::seconds(2));
  const auto deadline = std::chrono::steady_clock::now() + impl_->options.drain_timeout;
  while (impl_->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (impl_->in_flight.load() > 0) {
    spdlog::warn("http: {} requests still in flight after {} s; closing them", impl_->in_flight.load(),
                 impl_->options.drain_timeout.count());
  }
  impl_->io.stop();
  for (auto& thread : impl_->threads) thread.join();
  impl_->threads.clear();
}

std::size_t HttpServer::connections() const {
  return impl_->connections.load();
}

}  // namespace intercomm::gateway
