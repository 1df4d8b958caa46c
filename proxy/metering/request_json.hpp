#pragma once
// One request row as JSON: what `tokfence log --json` prints and what the dashboard's table and
// live events carry. One function, so the CLI's documented fields and the dashboard's never drift.
#include <nlohmann/json.hpp>

#include "proxy/metering/request_log.hpp"

namespace tokfence::proxy {

// Fields: id, time (UTC, milliseconds), ts_ms, provider, model, method, path, status, streaming,
// the four token counts, cost_pico / cost_usd (null = unknown price), cost_source, latency_ms,
// ttfb_ms, caller_pid, caller_name, session (null = none), error. Text is as stored: callers that
// print to a terminal or a page escape it there.
nlohmann::json request_json(const RequestRecord& r);

}  // namespace tokfence::proxy
