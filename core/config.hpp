#pragma once
// config.toml: every setting tokfence reads, with its default. Parsing reports syntax errors and
// wrong types as `file:line:column: what is wrong`; unknown keys become warnings naming the key.
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/home.hpp"
#include "core/providers.hpp"

namespace tokfence {

enum class VaultBackendChoice { automatic, file, secret_service };

// A price per million tokens, in micro-dollars (USD 2.50 -> 2'500'000). Exact integer arithmetic:
// tokens x this = pico-dollars.
struct ModelPrice {
  std::int64_t input = 0;
  std::int64_t output = 0;
  std::int64_t cache_read = 0;
  std::int64_t cache_write = 0;
  // Picodollars per call of a tool the provider runs itself and bills per call (web search: review
  // 15a T1); the same unit as the others, which are picodollars per token. -1 = the provider's
  // fee (proxy/metering/pricing.cpp kServerToolFees), filled in by the price table.
  std::int64_t tool_call = -1;
  bool operator==(const ModelPrice&) const = default;
};

struct Config {
  struct Daemon {
    std::string host = "127.0.0.1";
    int port = 9471;
    std::filesystem::path socket_path;  // default: home/tokfence.sock
    int io_threads = 0;  // 0 = one per CPU core, at most 16 (see io_thread_count())
    std::size_t max_header_bytes = 64 * 1024;
    std::size_t max_body_bytes = 64 * 1024 * 1024;  // room for image and audio uploads
    int connect_timeout_seconds = 10;
    int idle_timeout_seconds = 600;  // reasoning models can think for minutes between chunks
    int shutdown_grace_seconds = 10;
    // Limits against clients that hold the daemon's memory and descriptors (docs/PROXY.md,
    // "Limits"). Every wait is also bounded by idle_timeout_seconds.
    int header_timeout_seconds = 10;      // accept to the end of the first head; first byte to end of a later one
    int keepalive_timeout_seconds = 75;   // a kept-alive connection waiting for its next request
    int body_timeout_seconds = 120;       // end of the head to the end of the body, in total
    int max_connections = 4096;           // all client connections (lowered to fit RLIMIT_NOFILE)
    int max_connections_per_listener = 1024;  // TCP, the main socket, each launch's socket
    std::uint64_t max_inflight_body_bytes = 256ull * 1024 * 1024;  // request bodies held at once, all connections
    // Web origins ("https://app.example.com") whose pages may use the proxy. Empty: a request
    // sent by a browser page (Origin, or Sec-Fetch-Site other than none) is refused.
    std::vector<std::string> allowed_origins;
  } daemon;
  struct Logging {
    std::filesystem::path db_path;  // default: home/tokfence.db
    int retention_days = 90;
    bool identify_tcp_callers = true;  // map loopback connections to a local process
  } logging;
  struct Notifications {
    int budget_warning_percent = 80;
    bool desktop = true;  // notify-send where it exists
  } notifications;
  struct Vault {
    VaultBackendChoice backend = VaultBackendChoice::automatic;
  } vault;
  struct Launch {
    // The Docker Engine API socket `launch` uses (Docker, or Podman's `podman system service`);
    // empty = /var/run/docker.sock. DOCKER_HOST (unix://), when set, wins.
    std::filesystem::path engine_socket;
  } launch;
  struct Proxy {
    bool inject_stream_usage = true;  // add stream_options.include_usage to OpenAI chat streams
  } proxy;
  // [dashboard]: the daemon's loopback status listener (docs/METRICS.md): GET /metrics for the
  // daemon's own user. Off unless enabled; port 0 = any free port (daemon.json's dashboard_port).
  struct Dashboard {
    bool enabled = false;
    int port = 9472;
  } dashboard;
  struct Budget {
    std::string timezone;  // IANA name; empty = the machine's local zone
    bool refuse_unknown_cost = false;  // refuse models with no price once a budget is set
  } budget;
  // [egress]: the policy proxy on per-launch and per-run sockets (docs/EGRESS.md). Kept as text
  // here; proxy/egress checks the rules and refuses a daemon start on a bad one.
  struct Egress {
    std::vector<std::string> allow;  // [egress] allow = ["HOST[:PORT]", ...]: every relay listener
    // [egress] extra_ca_file: PEM certificates trusted, beside the system's, for the upstreams of
    // inspected hosts (where tokfence terminates the agent's TLS and opens its own).
    std::string extra_ca_file;
    // [egress.presets.<name>] hosts = [...]: added to, or replacing, the built-in presets.
    std::map<std::string, std::vector<std::string>> presets;
    // [egress.resolve] "name" = "ADDRESS[:PORT]": the name is connected there, trusted as given.
    std::map<std::string, std::string> resolve;
    // [egress.domains."<host>"]: what tokfence does inside connections to that host (or
    // "*.suffix"). mode "inspect" terminates TLS (hosts with a bound secret always are); the L7
    // rules apply to inspected connections only. Whether the host is reachable at all is still
    // the allow rules' decision.
    struct Domain {
      std::string mode;                      // "inspect" | "tunnel" | "" (inspect iff a secret is bound)
      std::vector<std::string> methods;      // empty = any
      std::vector<std::string> allow_paths;  // empty = any; "/prefix" or a glob with '*'
      std::vector<std::string> deny_paths;   // win over allow_paths
    };
    std::map<std::string, Domain> domains;
  } egress;
  // [immunefence]: agent sessions, capability tokens and the sensors that move their risk state
  // (docs/IMMUNEFENCE.md).
  struct ImmuneFence {
    // A valid session token on every request of the main listeners (TCP and the main socket).
    // Launch and run sockets always require their own session's token.
    bool require_token = true;
    int session_ttl_hours = 8;            // `tokfence session new` without --ttl
    int yellow_token_ttl_minutes = 60;    // tokens issued to a YELLOW (or worse) session
    int scope_violations_to_orange = 3;   // the scope sensor: YELLOW at the first, ORANGE at this many
    int egress_denials_per_minute = 10;   // YELLOW at this many refused egress attempts in a minute
    int yellow_rpm = 30;                  // a YELLOW session's rate when it has none of its own
    // The sensors that move risk states: honeytoken, secret_outbound, scope, egress_denials.
    std::vector<std::string> sensors = {"honeytoken", "secret_outbound", "scope", "egress_denials"};
  } immunefence;
  // Overrides and additions to the built-in providers, by name (already merged: see providers()).
  std::map<std::string, ProviderSpec> provider_overrides;
  // [pricing."<model>"] overrides and additions, per million tokens.
  std::map<std::string, ModelPrice> pricing_overrides;
  // [pricing] fallback = {input = .., output = ..}: what a model missing from the table costs while a
  // budget applies. Unset: such requests are refused then (an unknown price is never free).
  std::optional<ModelPrice> pricing_fallback;
  // The table `tokfence pricing update` writes (home/pricing-overrides.json): between the embedded
  // prices and [pricing."<model>"], which win over it.
  std::filesystem::path pricing_update_file;
  // Per-provider metering settings ([providers.<name>] keys), by provider name.
  struct Metering {
    // Output tokens assumed for a request that names no max_tokens, when a reservation is made and
    // when a request ends without usage (it is then charged its estimate, never $0).
    std::int64_t default_max_output_tokens = 4096;
    // Path suffixes allowed (and charged from their usage like a chat request) while a budget
    // applies, beyond the built-in allow-list (docs/CONTROLS.md).
    std::vector<std::string> budget_allowed_paths;
  };
  std::map<std::string, Metering, std::less<>> provider_metering;
  // The provider's metering settings (defaults when it has none).
  const Metering& metering(std::string_view provider) const;

  // Built-ins merged with [providers.*], sorted by name.
  std::vector<ProviderSpec> providers() const;
  std::optional<ProviderSpec> provider(std::string_view name) const;
};

struct ConfigLoad {
  Config config;
  std::vector<std::string> warnings;  // "file:line:col: unknown key 'x' in [daemon]"
};

// Reads `path` (a missing file means all defaults). `home` fills in the path defaults.
Result<ConfigLoad> load_config(const std::filesystem::path& path, const Home& home);
// Parses TOML text; `source_name` is used in messages.
Result<ConfigLoad> parse_config(std::string_view text, const std::string& source_name, const Home& home);

// Loads home's config.toml, prints warnings to stderr, throws UserError on errors. For CLI code.
Config load_config_or_throw(const Home& home);

}  // namespace tokfence
