// Exchanges, queues and bindings: declared on demand and again after every reconnect.
#include "bus/amqp_core.hpp"

#include "bus/topology.hpp"

#include <spdlog/spdlog.h>

namespace intercomm::bus::detail {

Result<void> AmqpCore::declare_queue(QueueSpec spec) {
  return call<void>(true, [this, spec = std::move(spec)]() -> Result<void> {
    auto declared = do_declare_queue(spec);
    if (declared) {
      std::erase_if(declared_, [&](const QueueSpec& known) { return known.name == spec.name; });
      declared_.push_back(spec);
    }
    return declared;
  });
}

Result<void> AmqpCore::declare_exchange(ExchangeSpec spec) {
  return call<void>(true, [this, spec = std::move(spec)]() -> Result<void> {
    auto declared = do_declare_exchange(spec);
    if (declared) {
      std::erase_if(exchanges_, [&](const ExchangeSpec& known) { return known.name == spec.name; });
      exchanges_.push_back(spec);
    }
    return declared;
  });
}

Result<std::uint64_t> AmqpCore::queue_depth(std::string queue) {
  return call<std::uint64_t>(false, [=, this]() -> Result<std::uint64_t> {
    if (!conn_ || broken_ || !connected_) return unavailable("bus: not connected");
    if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
    auto* declared = amqp_queue_declare(conn_, kDeclareChannel, bytes_of(queue), 1, 0, 0, 0, amqp_empty_table);
    if (auto ok = rpc_result(kDeclareChannel, "queue.declare passive " + queue); !ok) return ok.error();
    if (declared == nullptr) return unavailable("bus: no queue.declare-ok");
    return std::uint64_t{declared->message_count};
  });
}

Result<void> AmqpCore::unbind(std::string source, std::string destination, std::string key,
                              bool to_exchange) {
  return call<void>(true, [=, this]() -> Result<void> {
    if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
    if (to_exchange) {
      amqp_exchange_unbind(conn_, kDeclareChannel, bytes_of(destination), bytes_of(source), bytes_of(key),
                           amqp_empty_table);
    } else {
      amqp_queue_unbind(conn_, kDeclareChannel, bytes_of(destination), bytes_of(source), bytes_of(key),
                        amqp_empty_table);
    }
    // A missing exchange or queue (404) closes only the declare channel: nothing was bound.
    if (auto ok = rpc_result(kDeclareChannel, "unbind " + destination); !ok && (!conn_ || broken_)) return ok;
    return {};
  });
}

// The declare channel after a channel error is reopened for the next declaration.
bool AmqpCore::ensure_declare_channel() {
  return open_channels_.contains(kDeclareChannel) || open_channel(kDeclareChannel);
}

bool AmqpCore::declare_base_topology() {
  const amqp_table_t none = amqp_empty_table;
  for (auto [name, type] :
       {std::pair{kExchange, "direct"}, {kLiveExchange, "direct"}, {kDeadLetterExchange, "fanout"}}) {
    amqp_exchange_declare(conn_, kDeclareChannel, bytes_of(name), amqp_cstring_bytes(type), 0, 1, 0, 0, none);
    if (!rpc_ok(kDeclareChannel, "exchange.declare")) return false;
  }
  amqp_table_entry_t quorum{};
  quorum.key = amqp_cstring_bytes("x-queue-type");
  quorum.value.kind = AMQP_FIELD_KIND_UTF8;
  quorum.value.value.bytes = amqp_cstring_bytes("quorum");
  amqp_queue_declare(conn_, kDeclareChannel, bytes_of(kDeadLetterQueue), 0, 1, 0, 0,
                     amqp_table_t{1, &quorum});
  if (!rpc_ok(kDeclareChannel, "queue.declare dead_letters")) return false;
  amqp_queue_bind(conn_, kDeclareChannel, bytes_of(kDeadLetterQueue), bytes_of(kDeadLetterExchange),
                  amqp_empty_bytes, none);
  return rpc_ok(kDeclareChannel, "queue.bind dead_letters");
}

Result<void> AmqpCore::do_declare_exchange(const ExchangeSpec& spec) {
  if (!conn_) return unavailable("bus: not connected");
  if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
  const char* type = spec.type == ExchangeType::consistent_hash ? "x-consistent-hash"
                     : spec.type == ExchangeType::fanout        ? "fanout"
                                                                : "direct";
  amqp_table_entry_t hash_header{};
  amqp_table_t arguments = amqp_empty_table;
  if (spec.type == ExchangeType::consistent_hash) {
    hash_header.key = amqp_cstring_bytes("hash-header");
    hash_header.value.kind = AMQP_FIELD_KIND_UTF8;
    hash_header.value.value.bytes = bytes_of(spec.hash_header);
    arguments = amqp_table_t{1, &hash_header};
  }
  amqp_exchange_declare(conn_, kDeclareChannel, bytes_of(spec.name), amqp_cstring_bytes(type), 0, 1, 0, 0,
                        arguments);
  if (auto ok = rpc_result(kDeclareChannel, "exchange.declare " + spec.name); !ok) {
    if (spec.type == ExchangeType::consistent_hash) {
      return Error::of(
          ok.error().code,
          ok.error().message +
              " (is the plugin enabled? rabbitmq-plugins enable rabbitmq_consistent_hash_exchange)");
    }
    return ok;
  }
  for (const auto& key : spec.source_keys) {
    amqp_exchange_bind(conn_, kDeclareChannel, bytes_of(spec.name), bytes_of(spec.source), bytes_of(key),
                       amqp_empty_table);
    if (auto ok = rpc_result(kDeclareChannel, "exchange.bind " + spec.name); !ok) return ok;
  }
  return {};
}

Result<void> AmqpCore::do_declare_queue(const QueueSpec& spec) {
  if (!conn_) return unavailable("bus: not connected");
  if (!ensure_declare_channel()) return unavailable("bus: cannot open a channel");
  std::vector<amqp_table_entry_t> arguments;
  const auto text = [&](const char* key, std::string_view value) {
    amqp_table_entry_t entry{};
    entry.key = amqp_cstring_bytes(key);
    entry.value.kind = AMQP_FIELD_KIND_UTF8;
    entry.value.value.bytes = bytes_of(value);
    arguments.push_back(entry);
  };
  text("x-dead-letter-exchange",
       spec.dead_letter_exchange.empty() ? kDeadLetterExchange : std::string_view(spec.dead_letter_exchange));
  if (!spec.dead_letter_routing_key.empty()) text("x-dead-letter-routing-key", spec.dead_letter_routing_key);
  if (spec.message_ttl) {
    amqp_table_entry_t ttl{};
    ttl.key = amqp_cstring_bytes("x-message-ttl");
    ttl.value.kind = AMQP_FIELD_KIND_I64;
    ttl.value.value.i64 = spec.message_ttl->count();
    arguments.push_back(ttl);
  }
  if (spec.single_active_consumer) {
    amqp_table_entry_t single{};
    single.key = amqp_cstring_bytes("x-single-active-consumer");
    single.value.kind = AMQP_FIELD_KIND_BOOLEAN;
    single.value.value.boolean = 1;
    arguments.push_back(single);
  }
  if (spec.type == QueueType::quorum) {
    text("x-queue-type", "quorum");
    // A message leaves for its dead-letter exchange only once a queue there
    // confirmed it (a delay queue's retry, a job to dead_letters): a node lost
    // meanwhile never drops it. RabbitMQ requires reject-publish for this.
    text("x-dead-letter-strategy", "at-least-once");
    text("x-overflow", "reject-publish");
    if (spec.delivery_limit > 0) {
      amqp_table_entry_t limit{};
      limit.key = amqp_cstring_bytes("x-delivery-limit");
      limit.value.kind = AMQP_FIELD_KIND_I64;
      limit.value.value.i64 = spec.delivery_limit;
      arguments.push_back(limit);
    }
  }
  amqp_queue_declare(conn_, kDeclareChannel, bytes_of(spec.name), 0, 1, 0, 0,
                     amqp_table_t{static_cast<int>(arguments.size()), arguments.data()});
  if (auto ok = rpc_result(kDeclareChannel, "queue.declare " + spec.name); !ok) return ok;
  const std::string_view exchange =
      spec.bind_exchange.empty() ? kExchange : std::string_view(spec.bind_exchange);
  for (const auto& key : spec.binding_keys) {
    amqp_queue_bind(conn_, kDeclareChannel, bytes_of(spec.name), bytes_of(exchange), bytes_of(key),
                    amqp_empty_table);
    if (auto ok = rpc_result(kDeclareChannel, "queue.bind " + spec.name); !ok) return ok;
  }
  return {};
}

}  // namespace intercomm::bus::detail
