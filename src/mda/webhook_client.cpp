// The webhook client: every attempt is a coroutine on one I/O thread; Beast
// for HTTP, one OpenSSL context for TLS, kept-alive connections reused per host.
#include "mda/webhook.hpp"

#include "core/logging.hpp"

#include <fmt/core.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/url/parse.hpp>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

namespace intercomm::mda {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Target {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;  // with the query
  std::string pool_key() const { return fmt::format("{}://{}:{}", tls ? "https" : "http", host, port); }
};

std::optional<Target> parse_target(const std::string& url) {
  auto parsed = boost::urls::parse_absolute_uri(url);
  if (!parsed || (parsed->scheme() != "http" && parsed->scheme() != "https") || parsed->host().empty()) {
    return std::nullopt;
  }
  Target target;
  target.tls = parsed->scheme() == "https";
  target.host = std::string(parsed->encoded_host());
  if (target.host.size() > 2 && target.host.front() == '[')
    target.host = target.host.substr(1, target.host.size() - 2);
  target.port = parsed->has_port() ? std::string(parsed->port()) : (target.tls ? "443" : "80");
  target.path = std::string(parsed->encoded_resource());
  if (target.path.empty() || target.path.front() != '/') target.path = "/" + target.path;
  return target;
}

// One connection to a host, plain or TLS, with its read buffer.
struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  Clock::time_point idle_since;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }
};

// What ends one attempt early (its deadline, or stop()): the resolver or the
// connection it is waiting on. Touched on the I/O thread only.
struct Cutoff {
  tcp::resolver* resolver = nullptr;
  Connection* connection = nullptr;
  bool fired = false;

  void fire() {
    fired = true;
    if (resolver != nullptr) resolver->cancel();
    if (connection != nullptr) connection->lowest().close();
  }
};

struct Job {
  std::string url;
  std::string body;
  WebhookHeaders headers;
  std::promise<WebhookAttempt> promise;
};

bool is_stale_connection_error(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe;
}

}  // namespace

struct WebhookClient::Impl : std::enable_shared_from_this<Impl> {
  explicit Impl(WebhookOptions opts) : options(std::move(opts)), work(asio::make_work_guard(io)) {
    tls.set_default_verify_paths();
    tls.set_verify_mode(asio::ssl::verify_peer);
  }

  asio::awaitable<void> attempt(Job job);
  asio::awaitable<void> perform(const Target& target, const Job& job, Clock::time_point started,
                                WebhookAttempt& result);
  asio::awaitable<std::unique_ptr<Connection>> open(const Target& target, Cutoff& cutoff, WebhookAttempt& result);
  template <class Stream>
  asio::awaitable<bool> exchange(Stream& stream, Connection& connection, const Target& target, const Job& job,
                                 Clock::time_point started, WebhookAttempt& result, bool& stale);
  std::unique_ptr<Connection> take_idle(const std::string& key);
  void put_idle(const std::string& key, std::unique_ptr<Connection> connection);

  WebhookOptions options;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  asio::ssl::context tls{asio::ssl::context::tls_client};
  std::thread thread;
  std::mutex mu;         // post() against stop()
  bool stopped = false;  // under mu
  // On the I/O thread only:
  bool stopping = false;
  std::set<std::shared_ptr<Cutoff>> cutoffs;
  std::map<std::string, std::vector<std::unique_ptr<Connection>>> idle;
  std::atomic<std::uint64_t> attempts{0};
  std::atomic<std::uint64_t> reused{0};
  std::atomic<std::uint64_t> in_flight{0};
};

asio::awaitable<void> WebhookClient::Impl::attempt(Job job) {
  WebhookAttempt result;
  const auto started = Clock::now();
  try {
    if (auto target = parse_target(job.url); !target) {
      result.error = "not an http(s) URL";
    } else if (stopping) {
      result.error = "cancelled: the webhook client is stopping";
      result.cancelled = true;
    } else {
      co_await perform(*target, job, started, result);
    }
  } catch (const std::exception& e) {
    result.status = 0;
    result.error = std::string("client error: ") + e.what();
  }
  if (result.status == 0 && result.error.empty()) result.error = "no response";
  if (result.latency.count() == 0)
    result.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  --in_flight;
  job.promise.set_value(std::move(result));
}

asio::awaitable<void> WebhookClient::Impl::perform(const Target& target, const Job& job, Clock::time_point started,
                                                   WebhookAttempt& result) {
  auto cutoff = std::make_shared<Cutoff>();
  cutoffs.insert(cutoff);
  asio::steady_timer deadline(io, started + options.timeout);
  deadline.async_wait([cutoff](beast::error_code ec) {
    if (!ec) cutoff->fire();
  });
  // A kept-alive connection the host has closed meanwhile fails before any
  // response: that attempt is made again once on a new connection.
  for (int round = 0; round < 2 && !cutoff->fired; ++round) {
    result = WebhookAttempt{};
    auto connection = take_idle(target.pool_key());
    const bool was_idle = connection != nullptr;
    if (was_idle) {
      ++reused;
    } else {
      connection = co_await open(target, *cutoff, result);
      if (!connection) break;
    }
    cutoff->connection = connection.get();
    bool stale = false;
    const bool keep = connection->secure
                          ? co_await exchange(*connection->secure, *connection, target, job, started, result, stale)
                          : co_await exchange(*connection->plain, *connection, target, job, started, result, stale);
    cutoff->connection = nullptr;
    if (keep && !cutoff->fired) put_idle(target.pool_key(), std::move(connection));
    if (!(was_idle && stale)) break;
  }
  if (cutoff->fired) {
    result.status = 0;
    result.cancelled = stopping;
    result.error = stopping ? "cancelled: the webhook client is stopping"
                            : fmt::format("no response within {} ms", options.timeout.count());
  }
  deadline.cancel();
  cutoffs.erase(cutoff);
}

// Resolves, connects to the first allowed address and, for https, does the
// TLS handshake; null (and result.error) on failure.
asio::awaitable<std::unique_ptr<Connection>> WebhookClient::Impl::open(const Target& target, Cutoff& cutoff,
                                                                       WebhookAttempt& result) {
  tcp::resolver resolver(io);
  cutoff.resolver = &resolver;
  auto [resolve_error, results] =
      co_await resolver.async_resolve(target.host, target.port, asio::as_tuple(asio::use_awaitable));
  cutoff.resolver = nullptr;
  if (resolve_error) {
    result.error = fmt::format("resolving {}: {}", target.host, resolve_error.message());
    co_return nullptr;
  }
  std::vector<tcp::endpoint> allowed;
  for (const auto& entry : results) {
    if (options.allow_private || !is_private_address(entry.endpoint().address().to_string())) {
      allowed.push_back(entry.endpoint());
    }
  }
  if (allowed.empty()) {
    result.error = fmt::format("{} resolves only to private or loopback addresses", target.host);
    co_return nullptr;
  }
  auto connection = std::make_unique<Connection>();
  connection->plain = std::make_unique<beast::tcp_stream>(io);
  cutoff.connection = connection.get();
  auto [connect_error, endpoint] =
      co_await connection->plain->async_connect(allowed, asio::as_tuple(asio::use_awaitable));
  if (connect_error) {
    cutoff.connection = nullptr;
    result.error = "connecting: " + connect_error.message();
    co_return nullptr;
  }
  if (target.tls) {
    connection->secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(*connection->plain), tls);
    connection->plain.reset();
    if (!SSL_set_tlsext_host_name(connection->secure->native_handle(), target.host.c_str())) {
      cutoff.connection = nullptr;
      result.error = "TLS: cannot set the server name";
      co_return nullptr;
    }
    connection->secure->set_verify_callback(asio::ssl::host_name_verification(target.host));
    auto [handshake_error] = co_await connection->secure->async_handshake(asio::ssl::stream_base::client,
                                                                         asio::as_tuple(asio::use_awaitable));
    if (handshake_error) {
      cutoff.connection = nullptr;
      result.error = "TLS: " + handshake_error.message();
      co_return nullptr;
    }
  }
  cutoff.connection = nullptr;
  co_return connection;
}

// Writes the request and reads the response head and (a bounded amount of)
// its body. True when the connection can carry another request.
template <class Stream>
asio::awaitable<bool> WebhookClient::Impl::exchange(Stream& stream, Connection& connection, const Target& target,
                                                    const Job& job, Clock::time_point started,
                                                    WebhookAttempt& result, bool& stale) {
  http::request<http::string_body> request{http::verb::post, target.path, 11};
  request.set(http::field::host, target.host);
  request.set(http::field::user_agent, "intercomm-webhooks/1");
  request.set(http::field::content_type, "application/json");
  for (const auto& [name, value] : job.headers) request.set(name, value);
  request.body() = job.body;
  request.keep_alive(true);
  request.prepare_payload();
  auto [write_error, written] = co_await http::async_write(stream, request, asio::as_tuple(asio::use_awaitable));
  if (write_error) {
    stale = is_stale_connection_error(write_error);
    result.error = "sending the request: " + write_error.message();
    co_return false;
  }
  connection.buffer.consume(connection.buffer.size());
  http::response_parser<http::string_body> parser;
  parser.body_limit(options.max_response_bytes);
  auto [read_error, read] =
      co_await http::async_read_header(stream, connection.buffer, parser, asio::as_tuple(asio::use_awaitable));
  result.latency = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started);
  if (read_error) {
    stale = is_stale_connection_error(read_error);
    result.error = "reading the response: " + read_error.message();
    co_return false;
  }
  result.status = static_cast<int>(parser.get().result_int());
  // Read the body so the peer is not cut off mid-write; what it says does not matter.
  auto [body_error, body_read] =
      co_await http::async_read(stream, connection.buffer, parser, asio::as_tuple(asio::use_awaitable));
  co_return !body_error && parser.is_done() && parser.keep_alive();
}

std::unique_ptr<Connection> WebhookClient::Impl::take_idle(const std::string& key) {
  auto found = idle.find(key);
  if (found == idle.end()) return nullptr;
  auto& connections = found->second;
  while (!connections.empty()) {
    auto connection = std::move(connections.back());
    connections.pop_back();
    if (Clock::now() - connection->idle_since < options.idle_timeout) {
      if (connections.empty()) idle.erase(found);
      return connection;
    }
  }
  idle.erase(found);
  return nullptr;
}

void WebhookClient::Impl::put_idle(const std::string& key, std::unique_ptr<Connection> connection) {
  auto& connections = idle[key];
  std::erase_if(connections, [&](const auto& c) { return Clock::now() - c->idle_since >= options.idle_timeout; });
  if (connections.size() >= options.max_idle_per_host) return;  // closed as it goes
  connection->idle_since = Clock::now();
  connections.push_back(std::move(connection));
}

WebhookClient::WebhookClient(WebhookOptions options) : impl_(std::make_shared<Impl>(std::move(options))) {
  impl_->thread = std::thread([impl = impl_.get()] {
    core::logging::name_this_thread("webhook-io");
    impl->io.run();
  });
}

WebhookClient::~WebhookClient() {
  stop();
}

std::future<WebhookAttempt> WebhookClient::post(std::string url, std::string body, WebhookHeaders headers) {
  Job job{std::move(url), std::move(body), std::move(headers), {}};
  auto future = job.promise.get_future();
  std::lock_guard lock(impl_->mu);
  if (impl_->stopped) {
    job.promise.set_value(WebhookAttempt{0, {}, "cancelled: the webhook client is stopping", true});
    return future;
  }
  ++impl_->attempts;
  ++impl_->in_flight;
  asio::co_spawn(impl_->io, impl_->attempt(std::move(job)), [self = impl_](std::exception_ptr) {});
  return future;
}

void WebhookClient::stop() {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopped) return;
    impl_->stopped = true;
  }
  asio::post(impl_->io, [impl = impl_] {
    impl->stopping = true;
    for (const auto& cutoff : impl->cutoffs) cutoff->fire();
    impl->idle.clear();
  });
  impl_->work.reset();
  if (impl_->thread.joinable()) impl_->thread.join();
}

WebhookClient::Stats WebhookClient::stats() const {
  return Stats{impl_->attempts.load(), impl_->reused.load(), impl_->in_flight.load()};
}

}  // namespace intercomm::mda
