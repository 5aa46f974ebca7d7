// Beast HTTP sessions as coroutines; the router answers through a callback.
#include "gateway/server.hpp"

#include "core/ids.hpp"

#include <fmt/core.h>
#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cctype>
#include <thread>

namespace intercomm::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using core::Error;
using core::ErrorCode;

constexpr auto kWriteTimeout = std::chrono::seconds(10);

// Runs the router and resumes the coroutine with its response, on the
// coroutine's executor, whichever thread the responder is called from.
template <class Token>
auto async_dispatch(const Router& router, const HttpRequest& request, Token&& token) {
  return asio::async_initiate<Token, void(HttpResponse)>(
      [&router, &request](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        router.dispatch(request, [shared](HttpResponse response) {
          auto executor = asio::get_associated_executor(*shared);
          asio::post(executor,
                     [shared, response = std::move(response)]() mutable { (*shared)(std::move(response)); });
        });
      },
      token);
}

HttpRequest to_plain(http::request<http::string_body>&& request) {
  HttpRequest plain;
  plain.method = std::string(request.method_string());
  plain.target = std::string(request.target());
  for (const auto& field : request) {
    std::string name(field.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    plain.headers[name] = std::string(field.value());
  }
  plain.body = std::move(request.body());
  return plain;
}

}  // namespace

struct HttpServer::Impl {
  Impl(const Router& r, ServerOptions o)
      : router(r), options(std::move(o)), io(static_cast<int>(options.threads)) {}

  asio::awaitable<void> accept_loop() {
    while (acceptor.is_open()) {
      auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
      if (ec) {
        if (!acceptor.is_open()) co_return;
        continue;
      }
      if (connections.load() >= options.max_connections) {
        beast::error_code ignored;
        socket.close(ignored);
        continue;
      }
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
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

  asio::awaitable<void> session(tcp::socket socket) {
    ++connections;
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    bool first = true;
    while (true) {
      http::request_parser<http::string_body> parser;
      parser.header_limit(static_cast<std::uint32_t>(options.max_header_bytes));
      parser.body_limit(options.max_body_bytes);
      stream.expires_after(first ? options.read_timeout : options.idle_timeout);
      first = false;
      auto [ec, bytes] =
          co_await http::async_read(stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
      if (ec) {
        // Limits and garbage get an answer; a closed or silent peer does not.
        std::optional<HttpResponse> refusal;
        if (ec == http::error::body_limit) {
          refusal =
              error_response(Error::of(ErrorCode::invalid_request,
                                       fmt::format("body: larger than {} bytes", options.max_body_bytes)),
                             413);
        } else if (ec == http::error::header_limit) {
          refusal = error_response(Error::of(ErrorCode::invalid_request, "headers: too large"), 431);
        } else if (ec.category() == beast::error_code(http::error::bad_target).category() &&
                   ec != http::error::end_of_stream && ec != http::error::partial_message) {
          refusal =
              error_response(Error::of(ErrorCode::invalid_request, "not a valid HTTP/1.1 request"), 400);
        }
        if (refusal) co_await write(stream, std::move(*refusal), 11, false, core::new_message_id());
        break;
      }
      auto request = parser.release();
      const unsigned version = request.version();
      const bool keep_alive = request.keep_alive();
      HttpRequest plain = to_plain(std::move(request));
      std::string request_id = plain.header("x-request-id");
      if (request_id.empty() || request_id.size() > 128) {
        request_id = core::new_message_id();
        plain.headers["x-request-id"] = request_id;
      }
      stream.expires_never();  // the handler has its own deadlines
      HttpResponse response = co_await async_dispatch(router, plain, asio::use_awaitable);
      co_await write(stream, std::move(response), version, keep_alive, request_id);
      if (!keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
    --connections;
  }

  const Router& router;
  ServerOptions options;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::vector<std::thread> threads;
  std::atomic<std::size_t> connections{0};
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
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  for (unsigned i = 0; i < std::max(1U, impl_->options.threads); ++i) {
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  }
  impl_->started = true;
  return port;
}

void HttpServer::stop() {
  if (!impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  impl_->io.stop();
  for (auto& thread : impl_->threads) thread.join();
  impl_->threads.clear();
  // No thread runs the io_context now: closing here races with nothing.
  beast::error_code ignored;
  impl_->acceptor.close(ignored);
}

}  // namespace intercomm::gateway
