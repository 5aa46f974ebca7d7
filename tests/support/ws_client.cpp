// Test support: the WebSocket client, async Beast driven by run_for() so every
// wait is bounded.
#include "support/ws_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <algorithm>

namespace intercomm::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;

struct WsClient::Impl {
  asio::io_context io;
  websocket::stream<beast::tcp_stream> ws{io};
  beast::flat_buffer buffer;
  bool reading = false;
  bool frame_ready = false;
  beast::error_code read_error;

  // Runs the io_context until `done` or the timeout; true when done.
  template <class Done>
  bool run_until(Done done, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) return false;
      io.restart();
      io.run_one_for(deadline - now);
    }
    return true;
  }
};

WsClient::WsClient() : impl_(std::make_unique<Impl>()) {}
WsClient::~WsClient() = default;

bool WsClient::connect(std::uint16_t port, const std::string& target, const std::vector<std::string>& headers,
                       std::chrono::milliseconds timeout) {
  auto& ws = impl_->ws;
  beast::error_code ec;
  beast::get_lowest_layer(ws).socket().connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return false;
  ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& request) {
    for (const auto& header : headers) {
      const auto colon = header.find(':');
      request.set(header.substr(0, colon), header.substr(header.find_first_not_of(' ', colon + 1)));
    }
  }));
  websocket::response_type response;
  bool done = false;
  ws.async_handshake(response, "127.0.0.1", target, [&](beast::error_code e) {
    ec = e;
    done = true;
  });
  if (!impl_->run_until([&] { return done; }, timeout)) return false;
  if (ec) {
    refused_status_ = static_cast<int>(response.result_int());
    return false;
  }
  return true;
}

std::optional<std::string> WsClient::read(std::chrono::milliseconds timeout) {
  if (closed_) return std::nullopt;
  auto& impl = *impl_;
  if (!impl.reading) {
    impl.reading = true;
    impl.frame_ready = false;
    impl.ws.async_read(impl.buffer, [&impl](beast::error_code ec, std::size_t) {
      impl.read_error = ec;
      impl.frame_ready = true;
    });
  }
  if (!impl.run_until([&] { return impl.frame_ready; }, timeout)) return std::nullopt;
  impl.reading = false;
  if (impl.read_error) {
    closed_ = true;
    close_code_ = impl.ws.reason().code;
    close_reason_ = std::string(impl.ws.reason().reason.c_str());
    return std::nullopt;
  }
  std::string text = beast::buffers_to_string(impl.buffer.data());
  impl.buffer.consume(impl.buffer.size());
  return text;
}

bool WsClient::write(const std::string& text, std::size_t frame_bytes, std::chrono::milliseconds timeout) {
  auto& impl = *impl_;
  impl.ws.text(true);
  const std::size_t step = frame_bytes == 0 ? std::max<std::size_t>(text.size(), 1) : frame_bytes;
  std::size_t at = 0;
  do {
    const std::size_t size = std::min(step, text.size() - at);
    const bool last = at + size == text.size();
    bool done = false;
    beast::error_code ec;
    impl.ws.async_write_some(last, asio::buffer(text.data() + at, size), [&](beast::error_code e, std::size_t) {
      ec = e;
      done = true;
    });
    if (!impl.run_until([&] { return done; }, timeout) || ec) return false;
    at += size;
  } while (at < text.size());
  return true;
}

void WsClient::close() {
  if (closed_) return;
  closed_ = true;
  bool done = false;
  impl_->ws.async_close(websocket::close_code::normal, [&](beast::error_code) { done = true; });
  impl_->run_until([&] { return done; }, std::chrono::seconds(5));
}

}  // namespace intercomm::testing
