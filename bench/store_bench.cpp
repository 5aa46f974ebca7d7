// Store benchmark: puts, gets and index range reads through intercomm's store,
// against the same operations done raw (RocksDB API, raw hiredis), in one run.
//
// usage: store_bench ROCKSDB_DIR REDIS_URL REDIS_CLUSTER_URL [--quick]
#include "core/ids.hpp"
#include "store/redis_cluster.hpp"
#include "store/redis_node.hpp"
#include "store/redis_store.hpp"
#include "store/rocksdb_store.hpp"

#include <fmt/core.h>
#include <hiredis/hiredis.h>
#include <rocksdb/db.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
namespace store = intercomm::store;

// Runs op(thread, i) for i in [0, count) split over `threads`; returns ops/s.
double rate(int threads, int count, const std::function<bool(int, int)>& op) {
  std::atomic<int> failures{0};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = t; i < count; i += threads) {
        if (!op(t, i)) failures.fetch_add(1);
      }
    });
  }
  for (auto& worker : workers) worker.join();
  if (failures > 0) throw std::runtime_error(fmt::format("{} operations failed", failures.load()));
  return count / std::chrono::duration<double>(Clock::now() - start).count();
}

void row(const std::string& backend, const std::string& operation, int threads, double ours, double raw) {
  fmt::print("| {} | {} | {} | {:.0f} | {:.0f} | {:.0f}% |\n", backend, operation, threads, ours, raw,
             100.0 * ours / raw);
  std::fflush(stdout);
}

std::string value_of(int i) {
  return fmt::format(R"({{"sender":"alice","receiver":"bob","body":"message {}"}})", i);
}

// --- RocksDB ---

void bench_rocksdb(const std::string& dir, int count) {
  const std::string ours_path = dir + "/ours";
  const std::string raw_path = dir + "/raw";
  std::filesystem::remove_all(dir);
  auto ours = store::open_rocksdb(store::RocksOptions{ours_path, true});
  if (!ours) throw std::runtime_error(ours.error().message);
  rocksdb::Options options;
  options.create_if_missing = true;
  options.IncreaseParallelism(2);
  rocksdb::DB* raw_db = nullptr;
  if (!rocksdb::DB::Open(options, raw_path, &raw_db).ok()) throw std::runtime_error("raw rocksdb open");
  std::unique_ptr<rocksdb::DB> raw(raw_db);
  rocksdb::WriteOptions synced;
  synced.sync = true;
  const auto bucket = store::bucket("message");

  for (int threads : {1, 4}) {
    const std::string tag = std::to_string(threads);
    const double ours_put = rate(threads, count, [&](int, int i) {
      return bool((*ours)->put(bucket, tag + "-" + std::to_string(i), value_of(i)));
    });
    const double raw_put = rate(threads, count, [&](int, int i) {
      return raw->Put(synced, tag + "-" + std::to_string(i), value_of(i)).ok();
    });
    row("RocksDB", "put (WAL synced)", threads, ours_put, raw_put);
    const double ours_get = rate(threads, count * 20, [&](int, int i) {
      auto got = (*ours)->get(bucket, tag + "-" + std::to_string(i % count));
      return got && got->has_value();
    });
    const double raw_get = rate(threads, count * 20, [&](int, int i) {
      std::string value;
      return raw->Get(rocksdb::ReadOptions(), tag + "-" + std::to_string(i % count), &value).ok();
    });
    row("RocksDB", "get", threads, ours_get, raw_get);
  }

  // Index: 10,000 entries, pages of 50 newest first from random cursors.
  std::vector<std::string> ids;
  for (int i = 0; i < 10'000; ++i) ids.push_back(intercomm::core::new_message_id());
  rocksdb::WriteOptions unsynced;
  for (const auto& id : ids) {
    (void)(*ours)->index_add(bucket, "alice", id);
    (void)raw->Put(unsynced, "idx/alice/" + id, "");
  }
  const int pages = count * 2;
  const double ours_range = rate(1, pages, [&](int, int i) {
    store::RangeQuery query;
    query.before = ids[static_cast<std::size_t>(5000 + i % 5000)];
    auto page = (*ours)->range(bucket, "alice", query);
    return page && page->entries.size() == 50;
  });
  const double raw_range = rate(1, pages, [&](int, int i) {
    std::unique_ptr<rocksdb::Iterator> it(raw->NewIterator(rocksdb::ReadOptions()));
    const std::string prefix = "idx/alice/";
    it->SeekForPrev(prefix + ids[static_cast<std::size_t>(5000 + i % 5000)]);
    if (it->Valid() && it->key().ToString() == prefix + ids[static_cast<std::size_t>(5000 + i % 5000)])
      it->Prev();
    int n = 0;
    std::vector<std::string> entries;
    for (; it->Valid() && it->key().starts_with(prefix) && n < 50; it->Prev(), ++n) {
      entries.push_back(it->key().ToString().substr(prefix.size()));
    }
    return n == 50;
  });
  row("RocksDB", "range (50 newest before a cursor)", 1, ours_range, raw_range);
  ours->reset();
  raw.reset();
  std::filesystem::remove_all(dir);
}

// --- Redis ---

// Raw hiredis: one connection per thread to one node, commands one at a time.
struct RawRedis {
  std::vector<redisContext*> connections;
  RawRedis(const std::string& host, int port, int threads) {
    for (int t = 0; t < threads; ++t) connections.push_back(redisConnect(host.c_str(), port));
  }
  ~RawRedis() {
    for (auto* c : connections) redisFree(c);
  }
  // Runs the commands pipelined; true when none failed.
  bool run(int thread, const std::vector<std::vector<std::string>>& commands) {
    redisContext* c = connections[static_cast<std::size_t>(thread)];
    for (const auto& args : commands) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lengths;
      for (const auto& arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      redisAppendCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data());
    }
    bool ok = true;
    for (std::size_t i = 0; i < commands.size(); ++i) {
      void* reply = nullptr;
      if (redisGetReply(c, &reply) != REDIS_OK) return false;
      ok = ok && static_cast<redisReply*>(reply)->type != REDIS_REPLY_ERROR;
      freeReplyObject(reply);
    }
    return ok;
  }
};

void bench_redis(const std::string& name, const std::string& url, int wait_replicas, int count) {
  auto options = store::parse_redis_url(url);
  if (!options) throw std::runtime_error(options.error().message);
  options->durability =
      wait_replicas > 0 ? store::RedisOptions::Durability::replica : store::RedisOptions::Durability::local;
  auto ours = store::open_redis(*options);
  if (!ours) throw std::runtime_error(ours.error().message);
  const auto bucket = store::bucket("message");
  const std::string run_tag = intercomm::core::new_message_id();

  // Raw: straight to the node that owns the keys. For a cluster, the keys of
  // this run share one hash tag, so one master holds them all; ours routes.
  std::string host = options->nodes[0].first;
  int port = options->nodes[0].second;
  const std::string hash_tag = "{" + run_tag + "}";
  if (options->cluster) {
    store::redis::ClusterRouter router(store::redis::ClusterOptions{options->nodes});
    (void)router.refresh();
    const std::string master = router.master_of(store::redis::key_slot(hash_tag));
    host = master.substr(0, master.rfind(':'));
    port = std::stoi(master.substr(master.rfind(':') + 1));
  }
  const std::string wait = std::to_string(wait_replicas);
  for (int threads : {1, 4}) {
    RawRedis raw(host, port, threads);
    const std::string prefix = hash_tag + std::to_string(threads) + "-";
    const double ours_put = rate(threads, count, [&](int, int i) {
      return bool((*ours)->put(bucket, prefix + std::to_string(i), value_of(i)));
    });
    const double raw_put = rate(threads, count, [&](int t, int i) {
      std::vector<std::vector<std::string>> commands{
          {"SET", "raw:" + prefix + std::to_string(i), value_of(i)}};
      if (wait_replicas > 0) commands.push_back({"WAIT", wait, "2000"});
      return raw.run(t, commands);
    });
    row(name, wait_replicas > 0 ? "put (+ WAIT 1 replica)" : "put", threads, ours_put, raw_put);
    const double ours_get = rate(threads, count * 2, [&](int, int i) {
      auto got = (*ours)->get(bucket, prefix + std::to_string(i % count));
      return got && got->has_value();
    });
    const double raw_get = rate(threads, count * 2, [&](int t, int i) {
      return raw.run(t, {{"GET", "raw:" + prefix + std::to_string(i % count)}});
    });
    row(name, "get", threads, ours_get, raw_get);
  }

  RawRedis raw(host, port, 1);
  std::vector<std::string> ids;
  for (int i = 0; i < 10'000; ++i) ids.push_back(intercomm::core::new_message_id());
  const std::string index = "alice" + run_tag;
  const std::string raw_index = "raw:idx:" + hash_tag;  // on the node `raw` is connected to
  for (std::size_t i = 0; i < ids.size(); i += 500) {
    std::vector<std::vector<std::string>> batch;
    for (std::size_t j = i; j < i + 500; ++j) batch.push_back({"ZADD", raw_index, "0", ids[j]});
    raw.run(0, batch);
    for (std::size_t j = i; j < i + 500; ++j) (void)(*ours)->index_add(bucket, index, ids[j]);
  }
  const double ours_range = rate(1, count, [&](int, int i) {
    store::RangeQuery query;
    query.before = ids[static_cast<std::size_t>(5000 + i % 5000)];
    auto page = (*ours)->range(bucket, index, query);
    return page && page->entries.size() == 50;
  });
  const double raw_range = rate(1, count, [&](int, int i) {
    return raw.run(0, {{"ZREVRANGEBYLEX", raw_index, "(" + ids[static_cast<std::size_t>(5000 + i % 5000)],
                        "-", "LIMIT", "0", "51"}});
  });
  row(name, "range (50 newest before a cursor)", 1, ours_range, raw_range);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fmt::print(stderr, "usage: store_bench ROCKSDB_DIR REDIS_URL REDIS_CLUSTER_URL [--quick]\n");
    return 2;
  }
  const bool quick = argc > 4 && std::string(argv[4]) == "--quick";
  const int count = quick ? 2000 : 10000;
  fmt::print(
      "| backend | operation | threads | intercomm ops/s | raw ops/s | ratio |\n|---|---|---|---|---|---|\n");
  bench_rocksdb(argv[1], count);
  bench_redis("Redis", argv[2], 0, count);
  bench_redis("Redis Cluster", argv[3], 1, count);
  return 0;
}
