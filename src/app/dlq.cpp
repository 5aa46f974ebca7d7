// intercomm dlq: look at, replay and purge the dead_letters queue, over the
// bus (RabbitMQ with --amqp; or, with --store rocksdb:DIR and no --amqp, the
// journal of a stopped `intercomm run` that used that store).
// Also where `intercomm run` keeps that journal.
#include "app/dlq.hpp"

#include "bus/amqp.hpp"
#include "bus/dead_letters.hpp"
#include "bus/inproc.hpp"

#include <fmt/core.h>
#include <boost/json/serialize.hpp>

#include <ctime>

namespace intercomm::app {
namespace {

struct DlqFlags {
  std::string job;
  std::string older_than;
  std::vector<std::string> ids;
  std::size_t limit = 100;
  bool all = false;
};

std::string when(const std::optional<std::int64_t>& unix_seconds) {
  if (!unix_seconds) return "-";
  const std::time_t time = static_cast<std::time_t>(*unix_seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

std::unique_ptr<bus::Bus> open_bus(const core::Config& config, std::shared_ptr<bus::InprocBroker>& broker) {
  if (config.amqp_given) {
    bus::AmqpOptions options;
    options.urls = config.amqp;
    auto connection = bus::connect_amqp(options);
    if (!bus::wait_connected(*connection, std::chrono::seconds(20))) {
      fmt::print(stderr, "intercomm dlq: cannot reach RabbitMQ at {}\n", core::mask_url_passwords(config.amqp));
      return nullptr;
    }
    return connection;
  }
  auto opened = bus::open_inproc_broker(bus_journal_path(config.store));
  if (!opened) {
    fmt::print(stderr,
               "intercomm dlq: cannot open the journal of intercomm run ({}): {}; stop it first, or pass --amqp\n",
               bus_journal_path(config.store), opened.error().message);
    return nullptr;
  }
  broker = *opened;
  return bus::connect_inproc(broker);
}

int run_dlq(const core::Config& config, bus::DeadLetterAction action, const DlqFlags& flags) {
  bus::DeadLetterFilter filter;
  filter.job = flags.job;
  filter.ids = flags.ids;
  filter.limit = flags.limit;
  if (!flags.older_than.empty()) {
    const auto age = core::parse_duration(flags.older_than);
    if (!age) {
      fmt::print(stderr, "intercomm dlq: --older-than '{}': must be like 30s, 10m, 2h\n", flags.older_than);
      return 2;
    }
    filter.older_than = std::chrono::duration_cast<std::chrono::seconds>(*age);
  }
  if (action != bus::DeadLetterAction::list && !flags.all && filter.job.empty() && filter.ids.empty() &&
      !filter.older_than) {
    fmt::print(stderr, "intercomm dlq: say which letters: --id, --job, --older-than, or --all\n");
    return 2;
  }
  if (flags.all && action != bus::DeadLetterAction::list) filter.limit = bus::kMaxScan;

  std::shared_ptr<bus::InprocBroker> broker;
  auto connection = open_bus(config, broker);
  if (!connection) return 1;
  auto scan = bus::scan_dead_letters(*connection, filter, action);
  if (!scan) {
    fmt::print(stderr, "intercomm dlq: {}\n", scan.error().message);
    return 1;
  }
  const bool show = action == bus::DeadLetterAction::list && !flags.ids.empty();
  for (const auto& letter : scan->matched) {
    if (show) {
      boost::json::object headers;
      for (const auto& [key, value] : letter.envelope.headers) headers[key] = value;
      fmt::print("id:      {}\njob:     {}\nreason:  {}\nqueue:   {}\ndied at: {}\nheaders: {}\nbody:    {}\n\n",
                 letter.id, letter.job, letter.reason.empty() ? "-" : letter.reason,
                 letter.queue.empty() ? "-" : letter.queue, when(letter.died_at), boost::json::serialize(headers),
                 letter.envelope.body);
    } else {
      fmt::print("{}  {:<22} {:<16} {:<20} {} bytes\n", letter.id, letter.job,
                 letter.reason.empty() ? "-" : letter.reason, when(letter.died_at), letter.envelope.body.size());
    }
  }
  switch (action) {
    case bus::DeadLetterAction::list:
      fmt::print(stderr, "{} of {} dead letters{}\n", scan->matched.size(), scan->scanned,
                 scan->scanned >= bus::kMaxScan ? fmt::format(" (the first {} looked at)", bus::kMaxScan) : "");
      break;
    case bus::DeadLetterAction::replay: fmt::print(stderr, "replayed {} of {}\n", scan->acted, scan->matched.size()); break;
    case bus::DeadLetterAction::purge: fmt::print(stderr, "purged {} of {}\n", scan->acted, scan->matched.size()); break;
  }
  for (const auto& failure : scan->failed) fmt::print(stderr, "not replayed (kept): {}\n", failure);
  if (show && scan->matched.empty()) {
    fmt::print(stderr, "intercomm dlq: no dead letter with that id\n");
    return 1;
  }
  return scan->failed.empty() ? 0 : 1;
}

}  // namespace

std::string bus_journal_path(std::string_view store) {
  constexpr std::string_view kRocks = "rocksdb:";
  if (store.starts_with(kRocks)) {
    std::string path(store.substr(kRocks.size()));
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path + "-bus";
  }
  return "./intercomm-bus";
}

std::function<int()> add_dlq_command(CLI::App& app, core::Config& config) {
  auto* dlq = app.add_subcommand("dlq", "Dead letters: list, show, replay or purge them (over the bus)");
  dlq->require_subcommand(1);
  auto flags = std::make_shared<DlqFlags>();
  auto action = std::make_shared<bus::DeadLetterAction>(bus::DeadLetterAction::list);
  const auto selection = [&config, flags](CLI::App& command, bool with_all) {
    core::add_config_options(command, config, core::kAmqp | core::kStore);
    command.add_option("--job", flags->job, "Only letters of this job, e.g. send_message");
    command.add_option("--older-than", flags->older_than, "Only letters dead for at least this long, e.g. 10m");
    command.add_option("--id", flags->ids, "Only the letter(s) with this id (as listed)");
    if (with_all) command.add_flag("--all", flags->all, "Every letter (up to the first 10000)");
  };
  auto* list = dlq->add_subcommand("list", "One line per dead letter: id, job, reason, when, size");
  selection(*list, false);
  list->add_option("--limit", flags->limit, "Lines at most")->check(CLI::Range(1, 10000))->capture_default_str();
  auto* show = dlq->add_subcommand("show", "A dead letter whole: headers and job");
  core::add_config_options(*show, config, core::kAmqp | core::kStore);
  show->add_option("id", flags->ids, "Its id (as listed)")->required()->expected(1);
  auto* replay = dlq->add_subcommand("replay", "Queue the jobs again (idempotent), then remove the letters");
  selection(*replay, true);
  auto* purge = dlq->add_subcommand("purge", "Remove the letters for good");
  selection(*purge, true);
  replay->callback([action] { *action = bus::DeadLetterAction::replay; });
  purge->callback([action] { *action = bus::DeadLetterAction::purge; });
  return [&config, dlq, flags, action] {
    if (!dlq->parsed()) return -1;
    for (auto* command : dlq->get_subcommands()) core::finish_config(*command, config);
    return run_dlq(config, *action, *flags);
  };
}

}  // namespace intercomm::app
