// Bus benchmark: confirmed publishes and RPC round trips through intercomm's bus,
// against the same operations done by minimal raw rabbitmq-c code, in one run.
//
// usage: bus_bench AMQP_URL [--quick]
#include "bus/amqp.hpp"
#include "bus/rpc_client.hpp"
#include "bus/topology.hpp"
#include "core/ids.hpp"
#include "worker/worker.hpp"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace bus = intercomm::bus;

struct Figures {
  double ops_per_second = 0;
  double p50_us = 0;
  double p99_us = 0;
};

Figures figures_of(std::vector<double> latencies_us, Clock::duration elapsed) {
  std::sort(latencies_us.begin(), latencies_us.end());
  const auto at = [&](double q) {
    return latencies_us[static_cast<std::size_t>(q * (latencies_us.size() - 1))];
  };
  return Figures{latencies_us.size() / std::chrono::duration<double>(elapsed).count(), at(0.50), at(0.99)};
}

double micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// The median run by throughput, of `runs`.
template <class F>
Figures median_of(int runs, F&& run) {
  std::vector<Figures> all;
  for (int i = 0; i < runs; ++i) all.push_back(run());
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.ops_per_second < b.ops_per_second; });
  return all[all.size() / 2];
}

// --- raw rabbitmq-c: the ceiling --------------------------------------------

amqp_bytes_t bytes_of(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

amqp_connection_state_t raw_connect(const std::string& url) {
  std::string buffer = url;
  amqp_connection_info info{};
  amqp_parse_url(buffer.data(), &info);
  auto conn = amqp_new_connection();
  auto* socket = amqp_tcp_socket_new(conn);
  if (amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK)
    throw std::runtime_error("raw: connect");
  const char* vhost = (info.vhost && *info.vhost) ? info.vhost : "/";
  if (amqp_login(conn, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password).reply_type !=
      AMQP_RESPONSE_NORMAL) {
    throw std::runtime_error("raw: login");
  }
  amqp_channel_open(conn, 1);
  if (amqp_get_rpc_reply(conn).reply_type != AMQP_RESPONSE_NORMAL) throw std::runtime_error("raw: channel");
  return conn;
}

void raw_close(amqp_connection_state_t conn) {
  amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
  amqp_destroy_connection(conn);
}

// Publishes `count` persistent mandatory messages with confirms, `window` in flight.
Figures raw_publish(const std::string& url, const std::string& key, int count, int window) {
  auto conn = raw_connect(url);
  amqp_confirm_select(conn, 1);
  amqp_get_rpc_reply(conn);
  const std::string body = R"({"jsonrpc":"2.0","method":"bench","params":{"n":1}})";
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
  props.delivery_mode = 2;
  props.content_type = amqp_cstring_bytes("application/json");

  std::vector<Clock::time_point> sent_at(count + 1);
  std::vector<double> latencies;
  latencies.reserve(count);
  std::uint64_t next = 1;
  std::uint64_t confirmed_upto = 0;
  std::vector<bool> confirmed(count + 1, false);
  const auto start = Clock::now();
  while (latencies.size() < static_cast<std::size_t>(count)) {
    while (next <= static_cast<std::uint64_t>(count) &&
           next - 1 - latencies.size() < static_cast<std::uint64_t>(window)) {
      sent_at[next] = Clock::now();
      amqp_basic_publish(conn, 1, bytes_of(bus::kExchange), bytes_of(key), 1, 0, &props, bytes_of(body));
      ++next;
    }
    amqp_frame_t frame;
    if (amqp_simple_wait_frame(conn, &frame) != AMQP_STATUS_OK) throw std::runtime_error("raw: wait");
    if (frame.frame_type != AMQP_FRAME_METHOD || frame.payload.method.id != AMQP_BASIC_ACK_METHOD) continue;
    const auto* ack = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
    const auto now = Clock::now();
    const std::uint64_t from = ack->multiple ? confirmed_upto + 1 : ack->delivery_tag;
    for (std::uint64_t tag = from; tag <= ack->delivery_tag; ++tag) {
      if (confirmed[tag]) continue;
      confirmed[tag] = true;
      latencies.push_back(micros(now - sent_at[tag]));
    }
    while (confirmed_upto + 1 <= static_cast<std::uint64_t>(count) && confirmed[confirmed_upto + 1])
      ++confirmed_upto;
    amqp_maybe_release_buffers(conn);
  }
  const auto elapsed = Clock::now() - start;
  raw_close(conn);
  return figures_of(std::move(latencies), elapsed);
}

// A minimal RPC server: consume with prefetch 64, reply to reply_to, ack.
void raw_rpc_server(const std::string& url, const std::string& queue, std::atomic<bool>& stop) {
  auto conn = raw_connect(url);
  amqp_basic_qos(conn, 1, 0, 64, 0);
  amqp_basic_consume(conn, 1, bytes_of(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  amqp_get_rpc_reply(conn);
  while (!stop) {
    amqp_envelope_t envelope;
    timeval timeout{0, 100000};
    amqp_maybe_release_buffers(conn);
    const auto got = amqp_consume_message(conn, &envelope, &timeout, 0);
    if (got.reply_type != AMQP_RESPONSE_NORMAL) continue;
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_CORRELATION_ID_FLAG;
    props.correlation_id = envelope.message.properties.correlation_id;
    amqp_basic_publish(conn, 1, amqp_empty_bytes, envelope.message.properties.reply_to, 0, 0, &props,
                       envelope.message.body);
    amqp_basic_ack(conn, 1, envelope.delivery_tag, 0);
    amqp_destroy_envelope(&envelope);
  }
  raw_close(conn);
}

Figures raw_rpc(const std::string& url, const std::string& key, int count, int window) {
  auto conn = raw_connect(url);
  auto* declared = amqp_queue_declare(conn, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
  const std::string reply_queue(static_cast<char*>(declared->queue.bytes), declared->queue.len);
  amqp_basic_consume(conn, 1, bytes_of(reply_queue), amqp_empty_bytes, 0, 1, 1, amqp_empty_table);
  amqp_get_rpc_reply(conn);
  std::map<std::string, Clock::time_point> in_flight;
  std::vector<double> latencies;
  latencies.reserve(count);
  int sent = 0;
  const auto start = Clock::now();
  while (latencies.size() < static_cast<std::size_t>(count)) {
    while (sent < count && static_cast<int>(in_flight.size()) < window) {
      const std::string id = std::to_string(sent++);
      const std::string body =
          R"({"jsonrpc":"2.0","method":"bench_echo","params":{"n":1},"id":")" + id + "\"}";
      amqp_basic_properties_t props{};
      props._flags =
          AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
      props.reply_to = bytes_of(reply_queue);
      props.correlation_id = bytes_of(id);
      props.delivery_mode = 1;
      in_flight[id] = Clock::now();
      amqp_basic_publish(conn, 1, bytes_of(bus::kExchange), bytes_of(key), 0, 0, &props, bytes_of(body));
    }
    amqp_envelope_t envelope;
    amqp_maybe_release_buffers(conn);
    if (amqp_consume_message(conn, &envelope, nullptr, 0).reply_type != AMQP_RESPONSE_NORMAL) continue;
    const std::string id(static_cast<char*>(envelope.message.properties.correlation_id.bytes),
                         envelope.message.properties.correlation_id.len);
    if (auto found = in_flight.find(id); found != in_flight.end()) {
      latencies.push_back(micros(Clock::now() - found->second));
      in_flight.erase(found);
    }
    amqp_destroy_envelope(&envelope);
  }
  const auto elapsed = Clock::now() - start;
  raw_close(conn);
  return figures_of(std::move(latencies), elapsed);
}

// --- intercomm's bus ----------------------------------------------------------

std::unique_ptr<bus::Bus> connect(const std::string& url) {
  bus::AmqpOptions options;
  options.urls = {url};
  auto connection = bus::connect_amqp(options);
  if (!bus::wait_connected(*connection, 20s)) throw std::runtime_error("bus: connect");
  return connection;
}

// Keeps `window` operations in flight until `count` completed; `start_one(done)`
// begins one and calls done() when it completes.
template <class StartOne>
Figures windowed(int count, int window, StartOne&& start_one) {
  std::mutex mu;
  std::condition_variable cv;
  int in_flight = 0;
  std::vector<double> latencies;
  latencies.reserve(count);
  const auto start = Clock::now();
  for (int i = 0; i < count; ++i) {
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight < window; });
      ++in_flight;
    }
    const auto began = Clock::now();
    start_one([&, began](bool ok) {
      std::lock_guard lock(mu);
      if (ok) latencies.push_back(micros(Clock::now() - began));
      --in_flight;
      cv.notify_all();
    });
  }
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return in_flight == 0; });
  const auto elapsed = Clock::now() - start;
  if (latencies.size() != static_cast<std::size_t>(count)) {
    throw std::runtime_error(fmt::format("only {} of {} succeeded", latencies.size(), count));
  }
  return figures_of(std::move(latencies), elapsed);
}

Figures ours_publish(bus::Bus& connection, const std::string& key, int count, int window) {
  return windowed(count, window, [&](auto done) {
    bus::Envelope job;
    job.routing_key = key;
    job.body = R"({"jsonrpc":"2.0","method":"bench","params":{"n":1}})";
    connection.publish(bus::kExchange, std::move(job), 30s,
                       [done](bus::PublishStatus status) { done(status == bus::PublishStatus::confirmed); });
  });
}

Figures ours_rpc(bus::RpcClient& client, const std::string& job, int count, int window) {
  return windowed(count, window, [&](auto done) {
    client.call(job, json::object{{"n", 1}}, 30s, {}, [done](bus::RpcResult result) { done(bool(result)); });
  });
}

void delete_queue(const std::string& url, const std::string& queue) {
  auto conn = raw_connect(url);
  amqp_queue_delete(conn, 1, bytes_of(queue), 0, 0);
  amqp_get_rpc_reply(conn);
  raw_close(conn);
}

void row(const std::string& name, int window, const Figures& ours, const Figures& raw) {
  fmt::print("| {} | {} | {:.0f} | {:.0f} | {:.0f}% | {:.0f} / {:.0f} | {:.0f} / {:.0f} |\n", name, window,
             ours.ops_per_second, raw.ops_per_second, 100.0 * ours.ops_per_second / raw.ops_per_second,
             ours.p50_us, ours.p99_us, raw.p50_us, raw.p99_us);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bus_bench AMQP_URL [--quick]\n");
    return 2;
  }
  const std::string url = argv[1];
  const bool quick = argc > 2 && std::string(argv[2]) == "--quick";
  const int runs = quick ? 1 : 3;
  spdlog::set_level(spdlog::level::warn);

  auto publisher = connect(url);
  const std::string tag = intercomm::core::new_message_id();
  const std::string pub_queue = "bench_pub_" + tag;
  const std::string pub_key = "bench_pub_job_" + tag;
  if (!publisher->declare_queue(
          bus::QueueSpec{pub_queue, {pub_key}, bus::QueueType::quorum, 0, std::nullopt, {}, {}, {}, false}))
    return 1;

  fmt::print(
      "| operation | in flight | intercomm ops/s | raw rabbitmq-c ops/s | ratio | intercomm p50 / p99 µs | "
      "raw p50 / p99 µs |\n");
  fmt::print("|---|---|---|---|---|---|---|\n");
  for (int window : {1, 64}) {
    const int count = window == 1 ? (quick ? 500 : 2000) : (quick ? 5000 : 20000);
    Figures raw = median_of(runs, [&] { return raw_publish(url, pub_key, count, window); });
    Figures ours = median_of(runs, [&] { return ours_publish(*publisher, pub_key, count, window); });
    row("confirmed publish (quorum queue)", window, ours, raw);
  }
  delete_queue(url, pub_queue);

  // RPC: our worker + RpcClient against a raw server + raw client, same queue type.
  auto worker_bus = connect(url);
  auto client_bus = connect(url);
  const std::string job = "bench_echo_" + tag;
  intercomm::worker::WorkerOptions options;
  options.prefetch = 64;
  options.threads = 2;
  intercomm::worker::Worker worker(*worker_bus, "bench_" + tag, options);
  worker.on(job,
            [](const json::object& params, const intercomm::worker::JobContext&)
                -> intercomm::core::Result<json::value> { return json::value(params); });
  if (!worker.start()) return 1;
  auto client = bus::RpcClient::open(*client_bus);
  if (!client) return 1;

  const std::string raw_queue = "bench_raw_rpc_" + tag;
  const std::string raw_key = "bench_raw_echo_" + tag;
  if (!publisher->declare_queue(
          bus::QueueSpec{raw_queue, {raw_key}, bus::QueueType::quorum, 0, std::nullopt, {}, {}, {}, false}))
    return 1;
  std::atomic<bool> stop_server{false};
  std::thread server([&] { raw_rpc_server(url, raw_queue, stop_server); });

  for (int window : {1, 64}) {
    const int count = window == 1 ? (quick ? 500 : 2000) : (quick ? 5000 : 20000);
    Figures raw = median_of(runs, [&] { return raw_rpc(url, raw_key, count, window); });
    Figures ours = median_of(runs, [&] { return ours_rpc(**client, job, count, window); });
    row("RPC round trip (quorum queue)", window, ours, raw);
  }
  stop_server = true;
  server.join();
  worker.stop();
  delete_queue(url, raw_queue);
  delete_queue(url, worker.queue());
  return 0;
}
