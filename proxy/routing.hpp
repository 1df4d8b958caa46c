#pragma once
// Routing and header rewriting: pure functions from an inbound request to what goes upstream.
// No sockets here, so every rule is unit-tested on its own (tests/unit/test_proxy_routing.cpp).
//
// Rules (docs/PROXY.md):
//  - `/<provider>/<rest>?<query>` goes to `<upstream><rest>?<query>`;
//  - every inbound credential is removed (headers in credential_headers(), and query parameters
//    such as `key=`), then the provider's key is injected per its AuthScheme;
//  - hop-by-hop headers (and the ones named by Connection) are never forwarded, nor is
//    X-Tokfence-Caller; default_headers are added only when the client did not send them.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/beast/http/fields.hpp>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/providers.hpp"
#include "core/secret.hpp"

namespace tokfence::proxy {

// Split of an origin-form request target "/<provider>/<rest>?<query>".
struct RouteTarget {
  std::string provider;
  std::string rest;   // "" or starts with '/'
  std::string query;  // without '?', "" when absent
  bool has_query = false;
};

// nullopt when the target is not origin-form or names no provider (e.g. "/", "http://x/").
std::optional<RouteTarget> split_target(std::string_view target);

// scheme://host[:port][/base-path] of a provider's upstream.
struct UpstreamUrl {
  bool tls = false;
  std::string host;       // without brackets for IPv6 literals
  std::string port;       // always set ("443"/"80" by default)
  std::string base_path;  // "" or "/v1"-like, no trailing slash
  // "host[:port]" as sent in the Host header (default port omitted, IPv6 bracketed).
  std::string host_header() const;
  // Pool key: "https://host:port".
  std::string origin() const;
};
Result<UpstreamUrl> parse_upstream_url(std::string_view url);

// The query without credential parameters (key, api_key, apikey, api-key, access_token, ...).
// Order and encoding of the remaining parameters are kept byte for byte.
std::string strip_query_credentials(std::string_view query);

bool is_credential_header(std::string_view name);  // case-insensitive
bool is_hop_by_hop_header(std::string_view name);  // case-insensitive; RFC 9110 list + proxy-connection

// The upstream request target: base path + rest + filtered query ("/" when all are empty).
std::string upstream_target(const UpstreamUrl& upstream, const RouteTarget& route);

// The header fields of a request to an upstream: they hold the injected key, so their memory is
// wiped when freed.
using UpstreamFields = boost::beast::http::basic_fields<WipingAllocator<char>>;

// Copies `in` to `out` without credentials, hop-by-hop headers (incl. those named in Connection),
// Host, Content-Length, Expect, Accept-Encoding and X-Tokfence-Caller; then sets Host, the key per
// `spec.auth`, `Accept-Encoding: identity` (usage is read from the body, so it must not be
// compressed) and every default header the client did not send.
void build_upstream_headers(const boost::beast::http::fields& in, UpstreamFields& out,
                            const ProviderSpec& spec, const UpstreamUrl& upstream, const SecretString& key);

// Copies an upstream response's headers for the client, without hop-by-hop headers.
void build_client_response_headers(const boost::beast::http::fields& in, boost::beast::http::fields& out);

// {"error":{"type": type, "message": message, ...extra}} as one line of JSON.
std::string error_body(std::string_view type, std::string_view message, const nlohmann::json& extra = nullptr);

// "openai, anthropic, ..." for messages.
std::string provider_names(const std::vector<ProviderSpec>& providers);

}  // namespace tokfence::proxy
