#pragma once
// `tokfence watch`: the key leak detector (docs/WATCH.md).
//
// A key that leaked before it entered the vault (or leaks from somewhere else) shows up as usage at
// the provider that never went through tokfence. Each check asks the provider's usage/cost API for
// a window of time, sums tokfence's own request log for the same window, and raises an alert when
// the remote side exceeds the local side by more than a threshold. A second check, "idle", raises
// an alert when the provider reports any usage during a stretch with no local traffic at all.
//
// Usage APIs lag behind real time, so the window ends `settle` before now; rows in the request log
// are compared over exactly the same window. Cost APIs only have day buckets: the cost comparison
// covers whole UTC days from the start of the period up to now, and the local side does too.
//
// Keys only travel as SecretString, are sent only to the one endpoint URL (no redirects are
// followed, no proxy sees a plain-http request) and never appear in results, messages or the DB.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/error.hpp"
#include "core/secret.hpp"
#include "core/money.hpp"
#include "proxy/metering/pricing.hpp"

namespace tokfence::watch {

using json = nlohmann::json;

// "90" (seconds), "30s", "15m", "24h", "7d". Errors name the accepted forms.
Result<std::int64_t> parse_duration_seconds(std::string_view text);
std::string format_duration(std::int64_t seconds);  // 86400 -> "24h", 90 -> "90s"

// Which response shapes an endpoint speaks.
enum class Format {
  openai,     // /v1/organization/usage/completions + /v1/organization/costs
  anthropic,  // /v1/organizations/usage_report/messages + /v1/organizations/cost_report
  simple      // one URL, the documented generic shape (docs/WATCH.md)
};
std::string_view to_string(Format format);

// Where a provider's usage lives. For openai/anthropic `url` is the API origin the built-in paths
// are appended to; for simple it is the full endpoint.
struct Endpoint {
  Format format = Format::simple;
  std::string url;
};

// The built-in endpoint of a provider (openai, anthropic), or nullopt.
std::optional<Endpoint> builtin_endpoint(std::string_view provider);
// Parses the value of `--usage-endpoint P=URL` (URL may be prefixed `openai:`, `anthropic:` or
// `simple:` to force a shape; default: the provider's built-in shape, else simple). Checks the URL:
// http or https only, plain http only to a loopback host, no user:password part.
Result<std::pair<std::string, Endpoint>> parse_endpoint_override(std::string_view text);
// A URL with its query string and credentials removed, for messages and logs.
std::string redact_url(std::string_view url);

// What one side (remote or local) counted. nullopt = this side cannot tell (e.g. Anthropic's usage
// report has no request counts).
struct Amounts {
  std::optional<std::int64_t> requests;
  std::optional<std::int64_t> tokens;  // input (incl. cache reads and writes) + output
  std::optional<Picodollars> cost;
};

// One page of a usage/cost API response, summed. `next_page` is set when the API says has_more.
struct Page {
  Amounts amounts;
  std::optional<std::string> next_page;
  int buckets = 0;
};

// Time windows are unix milliseconds, [start, end).
struct Window {
  std::int64_t start_ms = 0;
  std::int64_t end_ms = 0;
};

// Parsers of the real response shapes (pure; errors say what is malformed). Buckets that do not lie
// wholly inside `window` are not counted: the APIs snap bucket edges, tokfence compares exact windows.
Result<Page> parse_openai_usage(const json& body, const Window& window);     // data[].results[] input_tokens, output_tokens, num_model_requests
Result<Page> parse_openai_costs(const json& body, const Window& window);     // data[].results[].amount.value (USD)
Result<Page> parse_anthropic_usage(const json& body, const Window& window);  // data[].results[] uncached/cache/output tokens
Result<Page> parse_anthropic_costs(const json& body, const Window& window);  // data[].results[].amount (decimal string, cents)
// Flat object, or {data:[{...}], has_more, next_page} whose entries are summed (no window filter:
// the endpoint was asked for the window).
Result<Page> parse_simple(const json& body);

struct RemoteUsage {
  Amounts amounts;     // requests/tokens over the usage window; cost over `cost_window`
  Window cost_window;  // whole days for the built-in APIs; the usage window for the simple shape
  int pages = 0;       // HTTP requests made (all endpoints)
};

// How the HTTP side fails, so callers can word the error (401/403 -> admin key).
struct FetchError {
  enum class Kind { auth, http, network, malformed, redirect } kind = Kind::network;
  int status = 0;
  std::string message;  // no key, no query string
};

template <class T>
using FetchResult = std::expected<T, FetchError>;

// One HTTP GET of a usage API: returns the parsed JSON body of a 200 response.
// `url` carries the query; `headers` the auth header (built from the key by the caller).
using HttpGet = std::function<FetchResult<json>(const std::string& url, const std::vector<std::pair<std::string, SecretString>>& headers)>;
// The libcurl implementation: no redirects followed, http/https only, 30 s timeout, 8 MiB body cap,
// no proxy for plain http (the key would be readable there).
HttpGet curl_http_get();

// Asks `endpoint` for the provider's usage in `usage_window` (requests, tokens) and, unless
// `Costs::no`, the cost over `cost_window` (whole days for the built-in APIs). Follows next_page up
// to 200 pages per endpoint. `provider_spec` decides the auth header for the simple shape.
enum class Costs { yes, no };
FetchResult<RemoteUsage> fetch_remote(const Endpoint& endpoint, const ProviderSpec& provider_spec, const SecretString& key,
                                      const Window& usage_window, const Window& cost_window, Costs costs,
                                      const HttpGet& get);

// tokfence's own log (table `requests` in `db`), one provider, [start, end). Requests counted are
// those that reached the provider (status 2xx, or 0 = client left before the end); tokens and costs
// are summed over all rows. A missing database or table is zero usage. `unknown_cost_requests` is
// the number of rows without a price: the local cost is then a lower bound.
struct LocalUsage {
  Amounts amounts;
  std::int64_t unknown_cost_requests = 0;
};
Result<LocalUsage> local_usage(const std::filesystem::path& db, const std::string& provider, const Window& window);
// Latest moment the provider had local traffic (request start + latency), unix ms; nullopt = none.
Result<std::optional<std::int64_t>> last_local_activity_ms(const std::filesystem::path& db, const std::string& provider);

struct Thresholds {
  Picodollars usd = 500'000'000'000;  // $0.50
  std::int64_t tokens = 10'000;
  std::int64_t requests = 10;
};

// One way remote exceeds local.
struct Finding {
  std::string metric;  // "usd" | "tokens" | "requests" (kind gap), or "idle"
  std::int64_t remote = 0;
  std::int64_t local = 0;
  std::int64_t threshold = 0;
};

// Gap check: a finding per metric where remote - local > threshold. `skip_cost` when the local cost
// is only a lower bound (unknown prices).
std::vector<Finding> compare(const Amounts& remote, const Amounts& local, const Thresholds& thresholds, bool skip_cost);

// One stored alert (a row of watch_alerts).
struct Alert {
  std::int64_t id = 0;
  std::int64_t ts_ms = 0;
  std::string provider;
  std::string kind;     // "gap" | "idle"
  std::string metric;   // usd | tokens | requests | idle-tokens | idle-requests
  std::int64_t remote = 0, local = 0, threshold = 0;
  std::int64_t window_start_ms = 0, window_end_ms = 0;
  bool revoked = false;
  std::string message;  // human sentence, never a key
  json to_json() const;
};

// The result of one provider's check, also the `--json` schema's `providers[]` entry.
struct ProviderCheck {
  std::string provider;
  std::string status;         // "ok" | "alert" | "error" | "skipped"
  std::string endpoint;       // redacted URL
  std::string key_used;       // vault entry name whose key was sent ("openai-admin"), never the key
  Window usage_window, cost_window;
  Amounts remote, local;
  std::int64_t local_unknown_cost_requests = 0;
  std::vector<Finding> findings;        // gap findings
  std::vector<Alert> alerts;            // alerts raised (stored, notified) by this check
  std::optional<Finding> idle;          // idle-time finding (remote usage while no local traffic)
  std::optional<Window> idle_window;    // the idle stretch checked, when the provider was idle
  std::string error;                    // status error/skipped: why
  bool revoked = false;                 // --auto-revoke acted
  std::string revoke_error;
  json to_json() const;
};

// Storage of alerts (table watch_alerts in the request-log database, WAL, busy_timeout).
Result<void> store_alerts(const std::filesystem::path& db, const std::vector<Alert>& alerts);
// Newest first. For `tokfence watch --history` and `tokfence status` (since_ms 0 = all).
Result<std::vector<Alert>> recent_alerts(const std::filesystem::path& db, std::int64_t since_ms, int limit);
// The alerts of the last `hours` for `tokfence status`: count and the newest few, as JSON
// {"count":N,"recent":[Alert...]}. A database without the table yields count 0.
Result<json> alerts_summary(const std::filesystem::path& db, int hours = 24, int limit = 5);

// Human sentences for an alert ("openai: remote usage exceeds tokfence's log by 12000 tokens ...").
std::string describe(const std::string& provider, const std::string& kind, const Finding& finding, const Window& window);
std::string format_amount(const std::string& metric, std::int64_t value);

// Everything one check cycle needs from the outside, so tests can drive it without a vault or daemon.
struct Environment {
  const Config* config = nullptr;
  std::filesystem::path db;
  // Key by vault entry name ("openai-admin", "openai"); nullopt = no such entry.
  std::function<Result<std::optional<SecretString>>(const std::string& name)> key;
  HttpGet http_get;
  // Revokes the provider; returns how ("via the running daemon", ...).
  std::function<Result<std::string>(const std::string& provider)> revoke;
  // Desktop notification (notify-send where present); may be empty.
  std::function<void(const std::string& title, const std::string& body)> notify;
  std::function<std::int64_t()> now_ms;
  // Continuous mode: the excess last alerted per "provider/kind/metric" and when, so an unchanged
  // gap is not raised again every interval: only when it grew by more than its threshold, or once
  // the usage that raised it has slid out of the window (then what is left is new).
  struct Raised {
    std::int64_t excess = 0;
    std::int64_t at_ms = 0;
  };
  std::map<std::string, Raised> raised;
};

struct Options {
  std::int64_t period_s = 24 * 3600;
  std::int64_t settle_s = 10 * 60;
  std::int64_t idle_window_s = 30 * 60;
  bool idle_check = true;
  Thresholds thresholds;
  bool auto_revoke = false;
  std::vector<std::string> providers;          // empty = every vault-backed provider
  std::map<std::string, Endpoint> endpoints;   // --usage-endpoint overrides
};

// The windows a check at `now_ms` uses (exposed for tests and --json).
Window usage_window_at(std::int64_t now_ms, std::int64_t period_s, std::int64_t settle_s);
Window cost_window_at(std::int64_t now_ms, std::int64_t period_s, std::int64_t settle_s);

// Checks one provider; never throws; network, auth and parse errors land in ProviderCheck::error.
// Stores alerts and acts on --auto-revoke itself.
ProviderCheck check_provider(const std::string& provider, const Options& options, Environment& env);

}  // namespace tokfence::watch
