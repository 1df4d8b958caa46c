#include "proxy/metering/request_json.hpp"

#include "core/money.hpp"
#include "core/time.hpp"

namespace tokfence::proxy {

using json = nlohmann::json;

json request_json(const RequestRecord& r) {
  return json{{"id", r.id},
              {"time", format_utc(r.ts_ms, "%Y-%m-%dT%H:%M:%S.%fZ")},
              {"ts_ms", r.ts_ms},
              {"provider", r.provider},
              {"model", r.model},
              {"method", r.method},
              {"path", r.path},
              {"status", r.status},
              {"streaming", r.streaming},
              {"input_tokens", r.usage.input_tokens},
              {"output_tokens", r.usage.output_tokens},
              {"cache_read_tokens", r.usage.cache_read_tokens},
              {"cache_write_tokens", r.usage.cache_write_tokens},
              {"cost_pico", r.cost ? json(*r.cost) : json(nullptr)},
              {"cost_usd", r.cost ? json(format_usd(*r.cost)) : json(nullptr)},
              {"cost_source", r.cost_source.empty() ? json(nullptr) : json(r.cost_source)},
              {"latency_ms", r.latency_ms},
              {"ttfb_ms", r.ttfb_ms},
              {"caller_pid", r.caller_pid},
              {"caller_name", r.caller_name},
              {"session", r.session.empty() ? json(nullptr) : json(r.session)},
              {"error", r.error}};
}

}  // namespace tokfence::proxy
