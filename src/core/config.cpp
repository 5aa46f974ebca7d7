// Config options, their checks and their masked description.
#include "core/config.hpp"

#include "core/limits.hpp"

#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <charconv>
#include <map>

namespace intercomm::core {
namespace {

std::string check_listen(const std::string& value) {
  auto parsed = parse_host_port(value);
  return parsed ? std::string() : parsed.error().message;
}

std::string check_store(const std::string& value) {
  const std::string_view v = value;
  const auto after = [&](std::string_view prefix) {
    return v.starts_with(prefix) && v.size() > prefix.size();
  };
  if (after("rocksdb:") || after("redis://") || after("redis-cluster://")) return {};
  return "must be rocksdb:PATH, redis://HOST:PORT or redis-cluster://HOST:PORT,HOST:PORT,...";
}

// A body of the largest size must still fit in one bus message once escaped:
// otherwise the gateway could answer 202 for a job a worker refuses.
std::string check_max_body(const std::string& value) {
  std::size_t bytes = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), bytes);
  if (ec != std::errc() || end != value.data() + value.size() || bytes == 0) {
    return "must be a number of bytes in the range 1 to " + std::to_string(kMaxBodyBytesLimit);
  }
  if (bytes > kMaxBodyBytesLimit) {
    return fmt::format(
        "{} is larger than the bus allows: at most {} (a job must fit in one {} MiB bus message even when "
        "JSON escapes every byte of the body as \\u00XX)",
        bytes, kMaxBodyBytesLimit, kMaxBusMessageBytes / (1024 * 1024));
  }
  return {};
}

std::string check_amqp(const std::string& value) {
  const std::string_view v = value;
  if (v.starts_with("amqps://")) {
    return "amqps:// (TLS) is not supported: intercomm speaks plain AMQP only; reach RabbitMQ over a trusted "
           "network or a TLS tunnel with amqp://";
  }
  if (v.starts_with("amqp://") && v.size() > 7) return {};
  return "must be an AMQP URL like amqp://user:password@host:5672/vhost";
}

// HS256 keys shorter than the hash are guessable offline from one token (RFC 7518 §3.2).
std::string check_secret(const std::string& value) {
  if (value.size() >= kMinSecretBytes) return {};
  return fmt::format("must be at least {} bytes (this one has {}); make one with: openssl rand -hex 32",
                     kMinSecretBytes, value.size());
}

}  // namespace

Result<HostPort> parse_host_port(std::string_view text) {
  const auto bad = [&] {
    return Error::of(ErrorCode::invalid_params,
                     fmt::format("'{}': must be HOST:PORT with a port from 0 to 65535", text));
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return bad();
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  if (host.front() == '[') {
    if (host.size() < 3 || host.back() != ']') return bad();
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad();  // an IPv6 address needs brackets
  }
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535) return bad();
  return HostPort{std::string(host), static_cast<std::uint16_t>(port)};
}

void add_config_options(CLI::App& app, Config& config, unsigned options) {
  if (options & kListen) {
    app.add_option("--listen", config.listen, "Gateway address HOST:PORT")
        ->envname("INTERCOMM_LISTEN")
        ->check(check_listen)
        ->capture_default_str();
  }
  if (options & kAmqp) {
    app.add_option("--amqp", config.amqp,
                   "RabbitMQ node URL; repeat the flag or separate with commas for the nodes of a cluster")
        ->envname("INTERCOMM_AMQP")
        ->delimiter(',')
        ->check(check_amqp)
        ->default_str(config.amqp.front());
  }
  if (options & kStore) {
    app.add_option("--store", config.store, "rocksdb:PATH, redis://HOST:PORT or redis-cluster://H:P,H:P,...")
        ->envname("INTERCOMM_STORE")
        ->check(check_store)
        ->capture_default_str();
  }
  if (options & kSecret) {
    app.add_option("--secret", config.secret, fmt::format("HS256 token secret, at least {} bytes", kMinSecretBytes))
        ->envname("INTERCOMM_SECRET")
        ->check(check_secret);
  }
  if (options & kLogging) {
    const std::map<std::string, LogFormat> formats{{"text", LogFormat::text}, {"json", LogFormat::json}};
    app.add_option("--log-format", config.log_format, "Log format: text or json")
        ->envname("INTERCOMM_LOG_FORMAT")
        ->transform(CLI::CheckedTransformer(formats, CLI::ignore_case))
        ->default_str("text");
    app.add_option("--log-level", config.log_level, "trace, debug, info, warn, error or critical")
        ->envname("INTERCOMM_LOG_LEVEL")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical"}))
        ->capture_default_str();
  }
  if (options & kLimits) {
    app.add_option("--max-body-bytes", config.max_body_bytes, "Largest message body in bytes")
        ->envname("INTERCOMM_MAX_BODY_BYTES")
        ->check(check_max_body)
        ->capture_default_str();
  }
  if (options & kGateway) {
    app.add_option("--max-connections", config.max_connections,
                   "Open client connections at most; further ones are closed at once")
        ->envname("INTERCOMM_MAX_CONNECTIONS")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}))
        ->capture_default_str();
    app.add_option("--jwt-public-key", config.jwt_public_key,
                   "PEM public key file: RS256 tokens verified with it are accepted too")
        ->envname("INTERCOMM_JWT_PUBLIC_KEY")
        ->check(CLI::ExistingFile);
    app.add_option("--rate-limits", config.rate_limits,
                   "Rate limits, e.g. send=50/s:200,subscription=30/m:10,dev_token=30/m:10,auth_failure=60/m:20,"
                   "typing=2/s:5 (per user, per user, per address, per address, per user; RATE/UNIT:BURST or off)")
        ->envname("INTERCOMM_RATE_LIMITS");
    app.add_option("--jwt-audience", config.jwt_audience, "When set, a token's aud must name it")
        ->envname("INTERCOMM_JWT_AUDIENCE");
    app.add_option("--jwt-issuer", config.jwt_issuer, "When set, a token's iss must be it")
        ->envname("INTERCOMM_JWT_ISSUER");
    app.add_option("--rpc-timeout-ms", config.rpc_timeout_ms, "Queries by RPC answer 504 after this")
        ->envname("INTERCOMM_RPC_TIMEOUT_MS")
        ->check(CLI::Range(std::uint32_t{1}, std::uint32_t{600000}))
        ->capture_default_str();
    app.add_option("--publish-timeout-ms", config.publish_timeout_ms,
                   "A send waits this long for the broker to take its job, through a failover; then "
                   "503 (not queued) or 504 (maybe queued)")
        ->envname("INTERCOMM_PUBLISH_TIMEOUT_MS")
        ->check(CLI::Range(std::uint32_t{100}, std::uint32_t{600000}))
        ->capture_default_str();
  }
  if (options & kWebhooks) {
    app.add_option("--webhook-retry-schedule", config.webhook_retry_schedule,
                   "Waits before each webhook retry, e.g. 5s,30s,2m,10m,1h; then dead-lettered")
        ->envname("INTERCOMM_WEBHOOK_RETRY_SCHEDULE")
        ->capture_default_str();
    app.add_option("--webhook-timeout-ms", config.webhook_timeout_ms, "One webhook attempt at most this long")
        ->envname("INTERCOMM_WEBHOOK_TIMEOUT_MS")
        ->check(CLI::Range(std::uint32_t{100}, std::uint32_t{120000}))
        ->capture_default_str();
    app.add_flag("--allow-private-webhooks", config.allow_private_webhooks,
                 "Allow webhooks to loopback and private addresses (tests, closed networks)")
        ->envname("INTERCOMM_ALLOW_PRIVATE_WEBHOOKS");
    app.add_option("--webhook-concurrency", config.webhook_concurrency,
                   "Webhook attempts in flight at most (the webhook worker's threads); live delivery has "
                   "its own")
        ->envname("INTERCOMM_WEBHOOK_CONCURRENCY")
        ->check(CLI::Range(1U, 256U))
        ->capture_default_str();
  }
  if (options & kSubscriptionLimit) {
    app.add_option("--max-subscriptions-per-user", config.max_subscriptions_per_user,
                   "Webhook subscriptions a user may have; one more is 409")
        ->envname("INTERCOMM_MAX_SUBSCRIPTIONS_PER_USER")
        ->check(CLI::Range(std::size_t{1}, std::size_t{1000}))
        ->capture_default_str();
  }
}

void finish_config(const CLI::App& app, Config& config) {
  const auto* amqp = app.get_option_no_throw("--amqp");
  config.amqp_given = amqp != nullptr && amqp->count() > 0;
  const auto* connections = app.get_option_no_throw("--max-connections");
  config.max_connections_given = connections != nullptr && connections->count() > 0;
}

std::string mask_url_password(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::string(url);
  const auto authority_start = scheme_end + 3;
  const auto authority_end = url.find_first_of("/?#", authority_start);
  const auto at = url.rfind('@', authority_end);
  if (at == std::string_view::npos || at < authority_start) return std::string(url);
  const auto colon = url.find(':', authority_start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return fmt::format("{}****{}", url.substr(0, colon + 1), url.substr(at));
}

std::string mask_url_passwords(const std::vector<std::string>& urls) {
  std::string out;
  for (const auto& url : urls) out += (out.empty() ? "" : ",") + mask_url_password(url);
  return out;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::int64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || number <= 0 || number > 1'000'000'000) return std::nullopt;
  const std::string_view unit(end, static_cast<std::size_t>(text.data() + text.size() - end));
  if (unit == "ms") return std::chrono::milliseconds(number);
  if (unit == "s") return std::chrono::seconds(number);
  if (unit == "m") return std::chrono::minutes(number);
  if (unit == "h") return std::chrono::hours(number);
  return std::nullopt;
}

std::string describe(const Config& config) {
  std::string out;
  const auto line = [&](std::string_view name, std::string_view value) {
    out += fmt::format("{:<19} = {}\n", name, value);
  };
  line("listen", config.listen);
  line("amqp", mask_url_passwords(config.amqp));
  line("store", mask_url_password(config.store));
  line("secret", config.secret.empty() ? "(not set)" : "****");
  line("log-format", config.log_format == LogFormat::json ? "json" : "text");
  line("log-level", config.log_level);
  line("max-body-bytes", std::to_string(config.max_body_bytes));
  line("max-connections", std::to_string(config.max_connections));
  line("jwt-public-key", config.jwt_public_key.empty() ? "(not set)" : config.jwt_public_key);
  line("rate-limits", config.rate_limits.empty() ? "(defaults)" : config.rate_limits);
  line("jwt-audience", config.jwt_audience.empty() ? "(not checked)" : config.jwt_audience);
  line("jwt-issuer", config.jwt_issuer.empty() ? "(not checked)" : config.jwt_issuer);
  line("rpc-timeout-ms", std::to_string(config.rpc_timeout_ms));
  line("publish-timeout-ms", std::to_string(config.publish_timeout_ms));
  line("webhook-retries", config.webhook_retry_schedule);
  line("webhook-timeout", std::to_string(config.webhook_timeout_ms) + " ms");
  line("private-webhooks", config.allow_private_webhooks ? "allowed" : "refused");
  line("webhook-concurrency", std::to_string(config.webhook_concurrency));
  line("max-subscriptions", std::to_string(config.max_subscriptions_per_user));
  return out;
}

}  // namespace intercomm::core
