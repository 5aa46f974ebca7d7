// What the gateway knows of users' blocks, to refuse a blocked sender (403)
// before anything is queued. Each receiver's block list is read once by RPC
// (list_blocks) and kept for `ttl`; every gateway binds the live key
// jobs::kBlocksKey, and a {"type":"blocks","user"} there (sent by the MTA
// whenever a user's blocks change, before it answers the change) drops that
// user's entry. After a bus reconnect (signals may be lost) everything is
// dropped. Concurrent checks of one receiver share one RPC. While the list
// cannot be read (the bus or the MTA down) the check waits and asks again,
// as a send waits for the broker, up to `patience`; then it fails: a list
// that cannot be read never lets a message through.
#pragma once

#include "bus/bus.hpp"
#include "bus/rpc_client.hpp"
#include "core/errors.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <thread>
#include <set>
#include <string>
#include <vector>

namespace intercomm::gateway {

struct BlockListOptions {
  std::chrono::milliseconds rpc_timeout{5000};
  std::chrono::milliseconds patience{5000};  // the gateway's publish timeout: how long a send may wait
  std::chrono::seconds ttl{60};       // a missed signal is forgotten after this long
  std::size_t max_entries = 100'000;  // receivers remembered; past it, all are dropped
};

class BlockList : public std::enable_shared_from_this<BlockList> {
 public:
  BlockList(bus::Bus& bus, BlockListOptions options);
  ~BlockList();
  BlockList(const BlockList&) = delete;
  BlockList& operator=(const BlockList&) = delete;

  // The RPC client that reads block lists (its intercept must pass deliveries to deliver()).
  void set_rpc(bus::RpcClient& rpc) { rpc_ = &rpc; }
  // Binds the reply queue to the blocks signals; `done` once the broker did.
  void start(std::function<void(core::Result<void>)> done = nullptr);

  // `done(true)` when `receiver` blocks `sender`; an error (-32010/-32011)
  // when it cannot be known now. Runs `done` at once when the answer is known.
  void check(const std::string& receiver, const std::string& sender, std::function<void(core::Result<bool>)> done);

  // For RpcClient's intercept: takes a blocks signal; false for anything else.
  bool deliver(bus::Envelope& envelope);
  void forget(const std::string& user);
  void forget_all();

  std::size_t lookups() const;  // RPCs made (for tests)

 private:
  using Waiter = std::function<void(core::Result<bool>)>;
  struct Entry {
    std::set<std::string> blocked;
    std::chrono::steady_clock::time_point expires;
  };
  struct Pending {
    std::vector<std::pair<std::string, Waiter>> waiters;  // sender, done
    bool forgotten = false;  // forget() since the RPC started: answer with it, do not keep it
    std::chrono::steady_clock::time_point give_up;  // transient failures are retried until then
  };
  void lookup(const std::string& receiver);
  void finished(const std::string& receiver, core::Result<std::vector<std::string>> blocks);
  void run_retries();

  bus::Bus& bus_;
  BlockListOptions options_;
  bus::RpcClient* rpc_ = nullptr;
  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::string, Pending, std::less<>> pending_;
  std::size_t lookups_ = 0;
  // Lookups to try again (after a transient failure), by when.
  std::multimap<std::chrono::steady_clock::time_point, std::string> retries_;
  std::condition_variable retry_cv_;
  bool stopping_ = false;
  std::thread retry_thread_;
};

}  // namespace intercomm::gateway
