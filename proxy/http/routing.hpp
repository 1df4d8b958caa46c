#pragma once
// Routing and header rewriting: pure functions from an inbound request to what goes upstream.
// No sockets here, so every rule is unit-tested on its own (tests/unit/test_proxy_routing.cpp).
//
// Rules (docs/PROXY.md):
//  - `/<provider>/<rest>?<query>` goes to `<upstream><rest>?<query>`;
//  - every inbound credential is removed (headers in credential_headers(), and query parameters
//    such as `key=`), then the provider's key is injected per its AuthScheme;
//  - hop-by-hop headers (and the ones named by Connection) are never forwarded, nor is
//    X-Tokfence-Caller, nor a method/path override (X-HTTP-Method-Override, X-Original-URL, ...);
//    default_headers are added only when the client did not send them.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/providers.hpp"
#include "core/secret.hpp"
#include "proxy/http/http1.hpp"

namespace tokfence::proxy {

// Split of an origin-form request target "/<provider>/<rest>?<query>": views into the target
// given to split_target (no copies on the request path), valid as long as it is.
struct RouteTarget {
  std::string_view provider;
  std::string_view rest;   // "" or starts with '/'
  std::string_view query;  // without '?', "" when absent
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

// The query without credential parameters (key, api_key, access_token, token, ...). A name is
// compared after %XX decoding, dropping control and space characters, ASCII lower-casing and '_'
// as '-' ("KEY", "k%65y", "key%00", "%20key", "Api_Key" all count); a part is dropped when any
// ';'-separated piece of it names one. Order and encoding of the remaining parameters are kept
// byte for byte.
std::string strip_query_credentials(std::string_view query);
// Whether the query has a credential parameter, as strip_query_credentials would drop one.
bool has_query_credential(std::string_view query);

// Why a request to a Google (Gemini-style) endpoint would come back without the usage tokfence
// meters it by, "" when it would not. Google's front end applies "system parameters" to every
// googleapis.com API: a response field mask (`fields` / `$fields` in the query, `X-Goog-FieldMask`
// as a header) filters usageMetadata out of a complete answer, `alt` / `$alt` other than `json` or
// `sse` changes its format (protobuf, media), `callback` wraps it as JSONP: answers the usage
// reader cannot read (reviews 15a G1, 15c G2: such requests were charged the estimate). So the
// query may hold only alt=json|sse, prettyPrint, $.xgafv and credential parameters (which are
// stripped). Names and values are read %XX- and '+'-decoded and in ASCII lower case (credential
// names as strip_query_credentials reads them); header names by header_names_equal.
std::string google_usage_hiding(const http1::RequestHead& head, std::string_view query);

// `text` with its %XX sequences decoded (malformed ones kept as they are): for ImmuneFence's scan
// of a target, which a provider decodes before reading.
std::string percent_decoded(std::string_view text);

// The request target with the percent-escapes in its path that stand for a letter, a digit, one of
// - . _ ~ (RFC 3986 unreserved: equivalent either way, section 6.2.2.2) or ':' decoded; nullopt when
// it has none (the usual case). The model proxy meters a request by its path, and upstream servers
// route on the decoded one: "/v1/%63hat/completions" is chat completions to them, and was metered as
// legacy completions here, with no usage forced into its stream (review 13a M2). Decoded, the
// request is classified, scoped, logged and forwarded as the one the upstream serves. The query and
// every other escape (%2F, %25, ...) are left as they are.
std::optional<std::string> path_escapes_normalized(std::string_view target);
// `json` with its backslash-u escapes of ASCII characters (code points below 0x80) and its
// escaped slashes replaced by the character itself, every other byte as it is (no parse: a body
// that is not JSON is treated the same). A JSON string may spell any character so and the
// provider decodes it, so a secret hidden that way is scanned for in this copy.
std::string json_unescaped(std::string_view json);

// Header names compare case-insensitively and with '_' equal to '-' (header_names_equal), since
// CGI-style servers read X_Api_Key as X-Api-Key.
bool is_credential_header(std::string_view name);
bool is_hop_by_hop_header(std::string_view name);  // RFC 9110 list + proxy-connection
bool is_cors_header(std::string_view name);        // Access-Control-*, case-insensitive

// Whether `method` may be forwarded to `spec`'s upstream: spec.methods, or default_methods()
// (GET, HEAD, POST, PUT, PATCH, DELETE) when it lists none. Case-sensitive, as methods are.
bool method_allowed(std::string_view method, const ProviderSpec& spec);

// Why the path after /<provider> must not be forwarded, "" when it may: a '.' or '..' segment
// (raw, %2E-encoded or mixed, also before a ';'), an empty segment ("//"; a trailing '/' is
// fine), an encoded '/' or '\', a control character, a malformed or double '%' encoding of
// those, or a character outside RFC 3986's pchar. Any of them could take the request out of the
// provider's base path on the upstream (https://host/inference/../admin).
std::string_view forward_path_problem(std::string_view rest);

// The upstream request target: base path + rest + filtered query ("/" when all are empty).
std::string upstream_target(const UpstreamUrl& upstream, const RouteTarget& route);

// The head of a request to an upstream: it holds the injected key, so its memory is wiped when
// freed (also the old block whenever the string grows).
using WipingString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;

// Writes the head of the upstream request to `out`: "<method> <upstream_target> HTTP/1.1", then the
// client's fields without credentials, hop-by-hop fields (incl. those named in Connection), Host,
// Content-Length, Expect, Accept-Encoding, X-Tokfence-Caller, method/path overrides
// (core/providers.hpp: is_override_header_name) and the names of `spec.forced_headers`;
// then Host, the key per `spec.auth`, `Accept-Encoding: identity` (usage is read from the body, so
// it must not be compressed), every default header the client did not send, every forced header,
// and Content-Length when `content_length` is set; then the empty line.
void build_upstream_head(const http1::RequestHead& in, const RouteTarget& route,
                         std::optional<std::uint64_t> content_length, const ProviderSpec& spec,
                         const UpstreamUrl& upstream, const SecretString& key, WipingString& out);

// Appends an upstream response's end-to-end fields for the client ("Name: value\r\n" each):
// no hop-by-hop fields (incl. those named in Connection), no Access-Control-* (no web page may
// read a reply) and no Content-Length beside a Transfer-Encoding (the proxy writes the body's
// framing itself).
void append_client_response_headers(const http1::ResponseHead& in, std::string& out);

// What a message's Content-Encoding fields say: every field is read (a second one must not hide
// behind a first "identity"), names compared as header_names_equal does (an upstream may read
// Content_Encoding as Content-Encoding), each a comma-separated list of codings.
struct ContentCoding {
  std::size_t fields = 0;  // Content-Encoding fields
  bool encoded = false;    // some field names a coding other than identity (any case)
};
ContentCoding content_coding(const http1::Head& head);

// Whether a request's head declares a JSON body: no Content-Type at all (FastAPI, hence vLLM, then
// parses the body as JSON), or a media type application/json or application/<x>+json (any field).
bool declares_json_body(const http1::Head& head);

// Why `body`, taken as JSON, is refused, or "" when it is not: a byte-order mark at its start
// (UTF-8 EF BB BF, UTF-16 FE FF / FF FE, UTF-32 00 00 FE FF) or a NUL byte anywhere (UTF-16/32 text
// without a mark: every JSON text has ASCII punctuation, a NUL beside it in those). JSON exchanged
// between systems is UTF-8 without a BOM (RFC 8259 section 8.1), which the providers take; Python
// servers also read the others (json.loads on bytes), where tokfence's scans and metering, which
// read bytes, would see noise.
std::string_view json_body_problem(std::string_view body);

// Why a JSON body with this head is refused for its Content-Type's charset parameter, or "": any
// charset but UTF-8 (or its subset US-ASCII). Servers decode the body by it (express's body-parser
// takes any utf-*, aiohttp whatever is named), so a UTF-7 body reached the upstream as text the
// scans and the metering, which read bytes, never saw (review 13a M3).
std::string json_charset_problem(const http1::Head& head);

// {"error":{"type": type, "message": message, ...extra}} as one line of JSON.
std::string error_body(std::string_view type, std::string_view message, const nlohmann::json& extra = nullptr);

// "openai, anthropic, ..." for messages.
std::string provider_names(const std::vector<ProviderSpec>& providers);

}  // namespace tokfence::proxy
