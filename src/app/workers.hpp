// The workers' side of the executable: their flags, options, and the
// `intercomm mta` / `intercomm mda` subcommands.
#pragma once

#include "bus/bus.hpp"
#include "core/config.hpp"
#include "mda/mda.hpp"
#include "mta/mta.hpp"
#include "store/store.hpp"
#include "worker/worker.hpp"

#include <CLI/CLI.hpp>

#include <memory>

namespace intercomm::app {

// A worker's concurrency. The MTA's handlers mostly wait on the store (a
// synced write, a network round trip): many threads cost little CPU and let
// the store merge concurrent writes into one sync (RocksDB's group commit,
// Redis pipelining), and reads always find a thread while the lanes write.
// The MDA's live deliveries are a batch job: a few threads, each taking what
// waits, make bigger batches (one publish and one round trip per batch) than
// many threads taking a delivery each.
struct WorkerFlags {
  std::uint16_t prefetch = 128;
  unsigned threads = 32;     // the MTA's
  unsigned mda_threads = 4;  // the MDA's live-delivery worker's (`mda --threads`)
  unsigned lanes = 16;       // the MTA's ordered lanes for send_message
  std::uint16_t lane_prefetch = worker::WorkerOptions{}.lane_prefetch;
};

// --prefetch and --threads; `threads` is the field --threads sets.
void add_worker_options(CLI::App& command, WorkerFlags& flags,
                        unsigned WorkerFlags::*threads = &WorkerFlags::threads);
// --lanes and --lane-prefetch: only the MTA has ordered jobs.
void add_lanes_option(CLI::App& command, WorkerFlags& flags);
worker::WorkerOptions worker_options(const WorkerFlags& flags);

mta::MtaOptions mta_options(const core::Config& config);

// The MDA's two workers on one bus: live delivery (rpc_queue_mda, `flags`)
// and webhook attempts (rpc_queue_mda_webhook, --webhook-concurrency
// threads), sharing one webhook client.
class MdaWorkers {
 public:
  MdaWorkers(bus::Bus& bus, const WorkerFlags& flags, const core::Config& config);
  ~MdaWorkers();

  // Registers the jobs and starts both workers; the error names a bad flag
  // or what could not be declared.
  core::Result<void> start(store::Store& store);
  // Webhook attempts in flight end at once (retried later, none spent), then
  // both workers finish what they hold. Bounded; idempotent.
  void stop();

  worker::Worker& live() { return live_; }
  worker::Worker& webhooks() { return webhooks_; }

 private:
  bus::Bus& bus_;
  core::Config config_;
  std::shared_ptr<mda::WebhookClient> client_;
  worker::Worker live_;
  worker::Worker webhooks_;
};

// intercomm mta / intercomm mda: serve their queues over RabbitMQ until
// SIGTERM, then drain.
int run_mta(const core::Config& config, const WorkerFlags& flags);
int run_mda(const core::Config& config, const WorkerFlags& flags);

}  // namespace intercomm::app
