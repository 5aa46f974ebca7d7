// The MTA's job table: which job runs which handler (the handlers are in
// send.cpp, reads.cpp and subscriptions.cpp).
#include "mta/mta.hpp"

#include "mta/jobs.hpp"

namespace intercomm::mta {

void register_jobs(worker::Worker& worker, store::Store& store, bus::Bus& bus, MtaOptions options) {
  auto context = std::make_shared<detail::Context>(detail::Context{store, bus, options});
  using Job = detail::JobResult (*)(detail::Context&, const boost::json::object&);
  const auto bind = [&](std::string name, Job job) {
    worker.on(std::move(name), [context, job](const boost::json::object& params, const worker::JobContext&) {
      return job(*context, params);
    });
  };
  worker.on_ordered("send_message", [context](std::span<const worker::BatchJob> jobs) {
    return detail::send_messages(*context, jobs);
  });
  bind("get_message", &detail::get_message);
  bind("list_messages", &detail::list_messages);
  bind("subscribe_user", &detail::subscribe_user);
  bind("list_subscriptions", &detail::list_subscriptions);
  bind("unsubscribe_user", &detail::unsubscribe_user);
  bind("claim_idempotency_key", &detail::claim_idempotency_key);
  bind("list_deliveries", &detail::list_deliveries);
}

}  // namespace intercomm::mta
