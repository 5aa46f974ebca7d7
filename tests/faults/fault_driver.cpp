// The fault suite's load driver: sender/receiver pairs at a fixed rate
// through real gateways, receivers on WebSockets that resume from their last
// seq, and afterwards a count of every message end to end.
//   fault_driver --name NAME --senders HOST:PORT[,...] --receivers HOST:PORT[,...] --secret S
//                [--pairs 10] [--rate 200] [--seconds 10] [--drain 90] [--tag T]
// Prints "load started" when the load begins (the scenario injects its fault
// after it), then one result line:
//   NAME: offered=… accepted=… non-202={…} not-stored=… not-delivered=… duplicates=…
//         stored-despite-503=… socket-order=… reconnects=… recovery-s=… delivery-max-s=… late-over-2s=…
//         -> ok|LOSS
// and exits 1 on any loss, any message stored although it was answered 503,
// or any socket frame out of seq order.
#include "gateway/jwt.hpp"

#include <fmt/core.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

struct Endpoint {
  std::string host;
  std::string port;
};

struct Options {
  std::string name = "load";
  std::vector<Endpoint> senders, receivers;
  std::string secret;
  int pairs = 10;
  int rate = 200;
  int seconds = 10;
  int drain = 90;
  std::string tag;
};

// One send: its body, the HTTP status (0: no answer) and when it was answered.
struct Sent {
  std::string body;
  int status = 0;
  Clock::time_point answered;
};

struct Pair {
  std::string sender, receiver;
  std::mutex mu;
  std::vector<Sent> sent;
  std::map<std::string, Clock::time_point> seen;  // bodies that reached the receiver's socket, and when
  std::uint64_t last_seq = 0;
  int order_violations = 0;
  int reconnects = 0;
  int socket_fd = -1;  // the receiver's open socket, shut down to stop its blocking read
};

std::vector<Endpoint> endpoints(const std::string& list) {
  std::vector<Endpoint> out;
  std::size_t at = 0;
  while (at < list.size()) {
    const auto comma = list.find(',', at);
    const std::string item = list.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    const auto colon = item.rfind(':');
    out.push_back(Endpoint{item.substr(0, colon), item.substr(colon + 1)});
    at = comma == std::string::npos ? list.size() : comma + 1;
  }
  return out;
}

// Blocking reads and writes give up after `timeout` (the socket's own timeouts).
void set_timeouts(tcp::socket& socket, std::chrono::seconds timeout) {
  timeval tv{static_cast<time_t>(timeout.count()), 0};
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// A keep-alive HTTP/1.1 client that reconnects when it must.
class HttpClient {
 public:
  explicit HttpClient(Endpoint endpoint) : endpoint_(std::move(endpoint)) {}

  // The status and body; status 0 when there was no answer.
  std::pair<int, std::string> request(http::verb verb, const std::string& target, const std::string& token,
                                      const std::string& body = "") {
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        if (!stream_) connect();
        http::request<http::string_body> request{verb, target, 11};
        request.set(http::field::host, endpoint_.host);
        request.set(http::field::authorization, "Bearer " + token);
        if (!body.empty()) {
          request.set(http::field::content_type, "application/json");
          request.body() = body;
        }
        request.prepare_payload();
        http::write(*stream_, request);
        http::response<http::string_body> response;
        http::read(*stream_, buffer_, response);
        if (!response.keep_alive()) stream_.reset();
        return {response.result_int(), response.body()};
      } catch (const std::exception&) {
        stream_.reset();
        buffer_.clear();
        if (attempt == 0 && verb != http::verb::post) continue;  // a GET may go again at once
        return {0, ""};
      }
    }
    return {0, ""};
  }

 private:
  void connect() {
    stream_ = std::make_unique<beast::tcp_stream>(io_);
    tcp::resolver resolver(io_);
    stream_->connect(resolver.resolve(endpoint_.host, endpoint_.port));
    set_timeouts(stream_->socket(), 30s);
  }

  Endpoint endpoint_;
  asio::io_context io_;
  std::unique_ptr<beast::tcp_stream> stream_;
  beast::flat_buffer buffer_;
};

std::string token(const Options& options, const std::string& user) {
  return intercomm::gateway::mint_hs256(options.secret, user, std::chrono::hours(2));
}

// Sends pair.sender -> pair.receiver at `per_second` until `until`, each send
// after the previous one's answer (a sender keeps its order).
void send_loop(const Options& options, Pair& pair, int index, double per_second, Clock::time_point start,
               Clock::time_point until) {
  HttpClient client(options.senders[static_cast<std::size_t>(index) % options.senders.size()]);
  const std::string bearer = token(options, pair.sender);
  const auto interval = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(1.0 / per_second));
  for (int n = 0;; ++n) {
    const auto at = start + interval * n;
    if (at >= until) break;
    std::this_thread::sleep_until(at);
    const std::string body = fmt::format("{}/{}/{}", options.tag, index, n);
    const auto [status, answer] = client.request(
        http::verb::post, "/v1/messages", bearer,
        json::serialize(json::object{{"receiver", pair.receiver}, {"body", body}}));
    std::lock_guard lock(pair.mu);
    pair.sent.push_back(Sent{body, status, Clock::now()});
  }
}

// True once every message accepted for `pair` reached its socket.
bool all_seen(Pair& pair) {
  std::lock_guard lock(pair.mu);
  for (const auto& sent : pair.sent) {
    if (sent.status == 202 && !pair.seen.contains(sent.body)) return false;
  }
  return true;
}

// The receiver's socket: reads frames, checks their seq order, and resumes
// from the last seq after any close or error, until `stop`.
void receive_loop(const Options& options, Pair& pair, int index, const std::atomic<bool>& stop) {
  const Endpoint& endpoint = options.receivers[static_cast<std::size_t>(index) % options.receivers.size()];
  const std::string bearer = token(options, pair.receiver);
  auto backoff = 100ms;
  while (!stop) {
    try {
      asio::io_context io;
      websocket::stream<tcp::socket> ws(io);
      tcp::resolver resolver(io);
      asio::connect(ws.next_layer(), resolver.resolve(endpoint.host, endpoint.port));
      std::uint64_t cursor = 0;
      {
        std::lock_guard lock(pair.mu);
        cursor = pair.last_seq;
        pair.socket_fd = ws.next_layer().native_handle();
      }
      if (stop) break;
      ws.handshake(endpoint.host, fmt::format("/v1/stream?after_seq={}&access_token={}", cursor, bearer));
      backoff = 100ms;
      beast::flat_buffer buffer;
      while (!stop) {
        beast::error_code ec;
        ws.read(buffer, ec);
        if (ec) break;
        const auto frame = json::parse(beast::buffers_to_string(buffer.data())).as_object();
        buffer.consume(buffer.size());
        if (frame.at("type").as_string() != "message") continue;
        const auto seq = frame.at("seq").to_number<std::uint64_t>();
        std::lock_guard lock(pair.mu);
        if (seq != pair.last_seq + 1) ++pair.order_violations;  // a hole, or a repeat
        if (seq > pair.last_seq) pair.last_seq = seq;
        pair.seen.try_emplace(std::string(frame.at("message").at("body").as_string()), Clock::now());
      }
    } catch (const std::exception&) {
    }
    {
      std::lock_guard lock(pair.mu);
      pair.socket_fd = -1;
    }
    if (stop) break;
    {
      std::lock_guard lock(pair.mu);
      ++pair.reconnects;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
  }
}

// Every body in the receiver's inbox (with repeats), read through any gateway
// that answers; nullopt when none did before `deadline`.
std::optional<std::vector<std::string>> inbox_of(const Options& options, const Pair& pair,
                                                 Clock::time_point deadline) {
  const std::string bearer = token(options, pair.receiver);
  while (Clock::now() < deadline) {
    for (const auto& endpoint : options.receivers) {
      HttpClient client(endpoint);
      std::vector<std::string> bodies;
      std::uint64_t after = 0;
      bool complete = false;
      for (int pages = 0; pages < 100000; ++pages) {
        const auto [status, body] = client.request(
            http::verb::get, fmt::format("/v1/users/{}/messages?after_seq={}&limit=100", pair.receiver, after),
            bearer);
        if (status != 200) break;
        const auto page = json::parse(body).as_object();
        for (const auto& item : page.at("messages").as_array()) {
          bodies.emplace_back(item.at("body").as_string());
        }
        if (page.at("next_seq").is_null()) {
          complete = true;
          break;
        }
        after = page.at("next_seq").to_number<std::uint64_t>();
      }
      if (complete) return bodies;
    }
    std::this_thread::sleep_for(500ms);
  }
  return std::nullopt;
}

int run(const Options& options) {
  std::vector<std::unique_ptr<Pair>> pairs;
  for (int i = 0; i < options.pairs; ++i) {
    auto pair = std::make_unique<Pair>();
    pair->sender = fmt::format("s{}_{}", i, options.tag);
    pair->receiver = fmt::format("r{}_{}", i, options.tag);
    pairs.push_back(std::move(pair));
  }
  std::atomic<bool> stop_receiving{false};
  std::vector<std::thread> receivers;
  for (int i = 0; i < options.pairs; ++i) {
    receivers.emplace_back([&, i] { receive_loop(options, *pairs[static_cast<std::size_t>(i)], i, stop_receiving); });
  }
  std::this_thread::sleep_for(1s);  // the sockets are live before the first send
  const auto start = Clock::now();
  const auto until = start + std::chrono::seconds(options.seconds);
  std::fputs("load started\n", stdout);
  std::fflush(stdout);
  std::vector<std::thread> senders;
  for (int i = 0; i < options.pairs; ++i) {
    senders.emplace_back([&, i] {
      send_loop(options, *pairs[static_cast<std::size_t>(i)], i, static_cast<double>(options.rate) / options.pairs,
                start, until);
    });
  }
  for (auto& thread : senders) thread.join();

  // Every accepted message reaches its socket, or the drain time runs out.
  const auto drain_until = Clock::now() + std::chrono::seconds(options.drain);
  for (auto& pair : pairs) {
    while (Clock::now() < drain_until && !all_seen(*pair)) std::this_thread::sleep_for(100ms);
  }
  stop_receiving = true;
  for (auto& pair : pairs) {
    std::lock_guard lock(pair->mu);
    if (pair->socket_fd >= 0) ::shutdown(pair->socket_fd, SHUT_RDWR);
  }
  for (auto& thread : receivers) thread.join();

  std::size_t offered = 0, accepted = 0, not_stored = 0, not_delivered = 0, duplicates = 0, despite_503 = 0;
  int order = 0, reconnects = 0;
  std::map<std::string, std::size_t> refused;
  std::vector<Clock::time_point> accepted_at;
  bool inbox_unreadable = false;
  Clock::time_point last_answer = start;
  double delivery_max = 0;      // the longest a 202 took to reach its socket
  std::size_t delivered_late = 0;  // accepted messages that took over 2 s
  for (auto& pair : pairs) {
    auto inbox = inbox_of(options, *pair, Clock::now() + std::chrono::seconds(options.drain));
    if (!inbox) inbox_unreadable = true;
    std::map<std::string, int> stored;
    for (const auto& body : inbox.value_or(std::vector<std::string>{})) ++stored[body];
    std::lock_guard lock(pair->mu);
    order += pair->order_violations;
    reconnects += pair->reconnects;
    for (const auto& sent : pair->sent) {
      ++offered;
      last_answer = std::max(last_answer, sent.answered);
      const int copies = stored.contains(sent.body) ? stored[sent.body] : 0;
      if (copies > 1) duplicates += static_cast<std::size_t>(copies - 1);
      if (sent.status == 202) {
        ++accepted;
        accepted_at.push_back(sent.answered);
        if (copies == 0) ++not_stored;
        if (auto seen = pair->seen.find(sent.body); seen == pair->seen.end()) {
          ++not_delivered;
        } else {
          const double delay = std::chrono::duration<double>(seen->second - sent.answered).count();
          delivery_max = std::max(delivery_max, delay);
          if (delay > 2.0) ++delivered_late;
        }
      } else {
        ++refused[sent.status == 0 ? std::string("no-answer") : std::to_string(sent.status)];
        if (sent.status == 503 && copies > 0) ++despite_503;
      }
    }
  }
  // Recovery: the longest stretch of the load with no 202 answered, from the
  // load's start to its last answer.
  accepted_at.push_back(start);
  accepted_at.push_back(last_answer);
  std::sort(accepted_at.begin(), accepted_at.end());
  double recovery = 0;
  for (std::size_t i = 1; i < accepted_at.size(); ++i) {
    recovery = std::max(recovery, std::chrono::duration<double>(accepted_at[i] - accepted_at[i - 1]).count());
  }
  // Per second of the load, to stderr: 202s answered / other answers (where a stall was).
  std::map<long, std::pair<int, int>> timeline;
  for (auto& pair : pairs) {
    std::lock_guard lock(pair->mu);
    for (const auto& sent : pair->sent) {
      auto& slot = timeline[std::chrono::duration_cast<std::chrono::seconds>(sent.answered - start).count()];
      (sent.status == 202 ? slot.first : slot.second) += 1;
    }
  }
  std::string per_second;
  for (const auto& [second, counts] : timeline) per_second += fmt::format(" {}s:{}/{}", second, counts.first, counts.second);
  fmt::print(stderr, "{}: answered per second (202/other):{}\n", options.name, per_second);
  std::string non_202;
  for (const auto& [status, count] : refused) non_202 += fmt::format("{}{}:{}", non_202.empty() ? "" : ",", status, count);
  const bool ok = !inbox_unreadable && not_stored == 0 && not_delivered == 0 && despite_503 == 0 && order == 0 &&
                  accepted > 0;
  fmt::print(
      "{}: offered={} accepted={} non-202={{{}}} not-stored={} not-delivered={} duplicates={} "
      "stored-despite-503={} socket-order={} reconnects={} recovery-s={:.1f} delivery-max-s={:.1f} "
      "late-over-2s={}{} -> {}\n",
      options.name, offered, accepted, non_202, not_stored, not_delivered, duplicates, despite_503, order,
      reconnects, recovery, delivery_max, delivered_late, inbox_unreadable ? " (an inbox could not be read)" : "",
      ok ? "ok" : "LOSS");
  std::fflush(stdout);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  options.tag = fmt::format("{:x}", std::chrono::system_clock::now().time_since_epoch().count() % 0xFFFFFFF);
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--name") options.name = value;
    else if (flag == "--senders") options.senders = endpoints(value);
    else if (flag == "--receivers") options.receivers = endpoints(value);
    else if (flag == "--secret") options.secret = value;
    else if (flag == "--pairs") options.pairs = std::stoi(value);
    else if (flag == "--rate") options.rate = std::stoi(value);
    else if (flag == "--seconds") options.seconds = std::stoi(value);
    else if (flag == "--drain") options.drain = std::stoi(value);
    else if (flag == "--tag") options.tag = value;
    else {
      fmt::print(stderr, "fault_driver: unknown flag {}\n", flag);
      return 2;
    }
  }
  if (options.senders.empty() || options.receivers.empty() || options.secret.empty() || options.pairs < 1 ||
      options.rate < 1) {
    fmt::print(stderr, "usage: fault_driver --name N --senders H:P[,…] --receivers H:P[,…] --secret S "
                       "[--pairs 10] [--rate 200] [--seconds 10] [--drain 90] [--tag T]\n");
    return 2;
  }
  return run(options);
}
