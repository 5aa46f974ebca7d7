// End-to-end latency, POST /v1/messages sent -> the receiver's WebSocket frame
// received, at fixed offered rates; and the gateway's memory per idle WebSocket.
//   stream_bench PORT SECRET GATEWAY_PID [--rates 100,500,1000] [--seconds 5] [--idle 10000] [--settle 2,12]
//                [--cpu-pids PID,PID...]
// Besides the Markdown table it prints one line per rate, "RESULT rate=... cpu_s=...",
// and "IDLE opened=... kib_per_socket=...", for bench/run_all.sh; cpu_s is the CPU
// time the --cpu-pids (the server's processes) spent during that rate's run.
#include "gateway/jwt.hpp"

#include <fmt/core.h>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// User + system CPU seconds of `pid` so far (0 when it is gone).
double cpu_seconds(int pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  const auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double cpu_seconds(const std::vector<int>& pids) {
  double total = 0;
  for (int pid : pids) total += cpu_seconds(pid);
  return total;
}

long rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

double percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1,
                         static_cast<std::size_t>(p * static_cast<double>(values.size())))];
}

struct Sender {
  beast::tcp_stream stream;
  beast::flat_buffer buffer;
  http::request<http::string_body> request;
  http::response<http::string_body> response;
  bool busy = false;
  explicit Sender(asio::io_context& io) : stream(io) {}
};

// One run at `rate` messages/s for `seconds`: returns latencies in ms and how many were lost.
struct RunResult {
  std::vector<double> latencies_ms;
  std::size_t sent = 0, skipped = 0, not_accepted = 0;
};

RunResult run_rate(std::uint16_t port, const std::string& secret, int rate, int seconds, int run_id) {
  asio::io_context io;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  const std::string sender_user = fmt::format("bench_alice_{}", run_id);
  const std::string receiver_user = fmt::format("bench_bob_{}", run_id);
  const std::string alice = intercomm::gateway::mint_hs256(secret, sender_user, std::chrono::hours(1));
  const std::string bob = intercomm::gateway::mint_hs256(secret, receiver_user, std::chrono::hours(1));

  RunResult result;
  std::map<std::string, Clock::time_point> sent_at;  // body marker -> time
  websocket::stream<beast::tcp_stream> ws(io);
  beast::get_lowest_layer(ws).connect(endpoint);
  ws.set_option(websocket::stream_base::decorator(
      [&](websocket::request_type& r) { r.set(http::field::authorization, "Bearer " + bob); }));
  ws.handshake("127.0.0.1", "/v1/stream");
  beast::flat_buffer ws_buffer;
  ws.read(ws_buffer);  // {"type":"live"}
  ws_buffer.consume(ws_buffer.size());
  std::function<void()> read_next = [&] {
    ws.async_read(ws_buffer, [&](beast::error_code ec, std::size_t) {
      if (ec) return;
      const auto frame = boost::json::parse(beast::buffers_to_string(ws_buffer.data()));
      ws_buffer.consume(ws_buffer.size());
      if (frame.at("type").as_string() == "message") {
        const std::string body(frame.at("message").at("body").as_string());
        if (auto it = sent_at.find(body); it != sent_at.end()) {
          result.latencies_ms.push_back(
              std::chrono::duration<double, std::milli>(Clock::now() - it->second).count());
          sent_at.erase(it);
        }
      }
      read_next();
    });
  };
  read_next();

  std::vector<std::unique_ptr<Sender>> senders;
  for (int i = 0; i < 64; ++i) {
    senders.push_back(std::make_unique<Sender>(io));
    senders.back()->stream.connect(endpoint);
  }
  asio::steady_timer tick(io);
  const auto interval = std::chrono::nanoseconds(1'000'000'000LL / rate);
  const auto start = Clock::now();
  const auto stop_sending = start + std::chrono::seconds(seconds);
  std::size_t next_sender = 0;
  std::size_t counter = 0;
  std::function<void(Clock::time_point)> schedule = [&](Clock::time_point at) {
    if (at >= stop_sending) return;
    tick.expires_at(at);
    tick.async_wait([&, at](beast::error_code) {
      Sender* sender = nullptr;
      for (std::size_t tried = 0; tried < senders.size(); ++tried) {
        auto& candidate = senders[(next_sender + tried) % senders.size()];
        if (!candidate->busy) {
          sender = candidate.get();
          next_sender = (next_sender + tried + 1) % senders.size();
          break;
        }
      }
      if (sender == nullptr) {
        ++result.skipped;  // every connection still waits for an answer: the server is behind
      } else {
        const std::string marker = fmt::format("m{}", counter++);
        sender->busy = true;
        sender->request = {http::verb::post, "/v1/messages", 11};
        sender->request.set(http::field::host, "127.0.0.1");
        sender->request.set(http::field::authorization, "Bearer " + alice);
        sender->request.set(http::field::content_type, "application/json");
        sender->request.body() = fmt::format(R"({{"receiver":"{}","body":"{}"}})", receiver_user, marker);
        sender->request.prepare_payload();
        sent_at[marker] = Clock::now();
        ++result.sent;
        http::async_write(sender->stream, sender->request, [&, sender](beast::error_code ec, std::size_t) {
          if (ec) return;
          sender->response = {};
          http::async_read(sender->stream, sender->buffer, sender->response,
                           [&, sender](beast::error_code read_error, std::size_t) {
                             if (read_error || sender->response.result_int() != 202) ++result.not_accepted;
                             sender->busy = false;
                           });
        });
      }
      schedule(at + interval);
    });
  };
  schedule(start);
  // Send for `seconds`, then give the last frames up to 5 s to arrive.
  io.run_for(std::chrono::seconds(seconds) + std::chrono::seconds(5));
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(
        stderr,
        "usage: stream_bench PORT SECRET GATEWAY_PID [--rates 100,500] [--seconds 5] [--idle 10000] [--settle 2,12]\n");
    return 2;
  }
  const auto port = static_cast<std::uint16_t>(std::stoi(argv[1]));
  const std::string secret = argv[2];
  const int pid = std::stoi(argv[3]);
  std::vector<int> rates{100, 500, 1000, 2000};
  int seconds = 5;
  int idle = 10000;
  std::vector<int> settle{2};  // seconds after the last socket opened: RSS read at each
  std::vector<int> cpu_pids{pid};
  const auto numbers = [](const std::string& list) {
    std::vector<int> out;
    for (std::size_t at = 0; at < list.size();) {
      const auto comma = list.find(',', at);
      out.push_back(std::stoi(list.substr(at, comma - at)));
      at = comma == std::string::npos ? list.size() : comma + 1;
    }
    return out;
  };
  for (int i = 4; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--cpu-pids") cpu_pids = numbers(argv[i + 1]);
    if (flag == "--seconds") seconds = std::stoi(argv[i + 1]);
    if (flag == "--idle") idle = std::stoi(argv[i + 1]);
    if (flag == "--settle") settle = numbers(argv[i + 1]);  // e.g. "2,12": RSS at 2 s and at 12 s
    if (flag == "--rates") rates = numbers(argv[i + 1]);  // "": none (idle sockets only)
  }

  fmt::print(
      "| offered msg/s | sent | received | not within 5 s | p50 ms | p99 ms | p99.9 ms "
      "|\n|---|---|---|---|---|---|---|\n");
  int run_id = 0;
  for (int rate : rates) {
    const double cpu_before = cpu_seconds(cpu_pids);
    auto result = run_rate(port, secret, rate, seconds, ++run_id);
    const double cpu = cpu_seconds(cpu_pids) - cpu_before;
    const std::size_t received = result.latencies_ms.size();
    const double p50 = percentile(result.latencies_ms, 0.5), p99 = percentile(result.latencies_ms, 0.99),
                 p999 = percentile(result.latencies_ms, 0.999);
    fmt::print("| {} | {} | {} | {} | {:.2f} | {:.2f} | {:.2f} |\n", rate, result.sent, received,
               result.sent - received, p50, p99, p999);
    fmt::print("RESULT rate={} seconds={} sent={} received={} not_accepted={} p50={:.2f} p99={:.2f} p999={:.2f} "
               "cpu_s={:.2f}\n",
               rate, seconds, result.sent, received, result.not_accepted, p50, p99, p999, cpu);
    std::fflush(stdout);
  }
  if (idle <= 0) return 0;

  // Idle sockets: distinct users, so each is a binding as well as a socket.
  asio::io_context io;
  const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
  const long before = rss_kib(pid);
  std::vector<std::unique_ptr<websocket::stream<beast::tcp_stream>>> sockets;
  int opened = 0;
  for (int i = 0; i < idle; ++i) {
    auto ws = std::make_unique<websocket::stream<beast::tcp_stream>>(io);
    beast::error_code ec;
    beast::get_lowest_layer(*ws).socket().connect(endpoint, ec);
    if (ec) break;
    const std::string token =
        intercomm::gateway::mint_hs256(secret, fmt::format("idle_{}", i), std::chrono::hours(1));
    ws->set_option(websocket::stream_base::decorator(
        [token](websocket::request_type& r) { r.set(http::field::authorization, "Bearer " + token); }));
    ws->handshake("127.0.0.1", "/v1/stream", ec);
    if (ec) break;
    sockets.push_back(std::move(ws));
    ++opened;
  }
  // The first reading is the figure (IDLE); later ones show what the
  // allocator hands back once the handshakes' garbage is returned (IDLE_LATER).
  int waited = 0;
  for (std::size_t k = 0; k < settle.size(); ++k) {
    std::this_thread::sleep_for(std::chrono::seconds(std::max(0, settle[k] - waited)));
    waited = std::max(waited, settle[k]);
    const long after = rss_kib(pid);
    const double per_socket = opened > 0 ? static_cast<double>(after - before) / opened : 0.0;
    fmt::print("\nidle WebSockets open: {}; gateway RSS {} MiB -> {} MiB {} s after the last: {:.1f} KiB per socket\n",
               opened, before / 1024, after / 1024, waited, per_socket);
    fmt::print("{} opened={} rss_before_kib={} rss_after_kib={} kib_per_socket={:.1f} settle_s={}\n",
               k == 0 ? "IDLE" : "IDLE_LATER", opened, before, after, per_socket, waited);
  }
  return 0;
}
