#pragma once
// Inspected egress (docs/EGRESS.md, "Inspected hosts"): what happens to one request inside a
// CONNECT tunnel whose TLS tokfence terminates, because the host has a secret bound to it (`vault
// add NAME - --host HOST`) or is set to mode = "inspect". The agent holds only placeholders
// (`tokfence-secret:NAME`); the real secret is written into the request here, on its way to a
// host it is bound to, and nowhere else.
//
// What is checked, in order, before a byte goes upstream: the method and path rules of
// [egress.domains."<host>"], that Host names the host the tunnel was opened to (so a tunnel to a
// bound host cannot carry a request meant for another virtual host at the same address), no
// protocol upgrade (websockets would be an uninspected tunnel inside the tunnel), and that every
// placeholder names a secret bound to this host. A placeholder sent anywhere else is refused.
//
// One request per inspected connection: the rewritten request says Connection: close, and so does
// the response the client gets. The response is watched for the secrets that went into its request
// (SecretWatch): a host that echoes a request back (an error page quoting the URL, an echo
// endpoint) would otherwise hand the agent the secret it must never see. Pure functions
// (tests/unit/test_proxy_inspect.cpp); the I/O is in inspected_tunnel.hpp.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/egress_env.hpp"
#include "core/secret.hpp"
#include "proxy/egress/policy.hpp"
#include "proxy/http/http1.hpp"

namespace tokfence::proxy::inspect {

// What the agent holds instead of a secret: the prefix and the secret's vault name (the launcher
// puts the same into the fence: core/egress_env.hpp).
inline constexpr std::string_view kPlaceholderPrefix = kSecretPlaceholderPrefix;

// A vault entry with hosts: the value, the host patterns ("name" or "*.suffix") it may go to, and
// whether it may stand in the URL path (`vault add --in path`: a Telegram bot token, /bot<token>/)
// as well as in a credential field. The position is part of the binding: a secret bound for
// credential fields only is never written into a path, whatever else the request carries.
struct BoundSecret {
  SecretString value;
  std::vector<std::string> hosts;
  bool in_path = false;
};
using SecretBook = std::map<std::string, BoundSecret, std::less<>>;

// The bound secrets in memory, swapped as a whole when the vault is reloaded.
class LiveSecrets {
 public:
  void replace(SecretBook book);
  std::shared_ptr<const SecretBook> snapshot() const;

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const SecretBook> book_ = std::make_shared<const SecretBook>();
};

// A bound secret goes to its hosts on this port only (https), whatever else the policy allows.
inline constexpr std::uint16_t kBoundPort = 443;

// Whether a bound secret may go to `host` (normalised, lower case) at all, and to `to` (port too).
bool bound_to(const BoundSecret& secret, std::string_view host);
bool bound_to(const BoundSecret& secret, const egress::Destination& to);
// The values of every secret bound to `to`: what its answers are watched for.
std::vector<std::string_view> secrets_bound_to(const SecretBook& secrets, const egress::Destination& to);

// Whether CONNECTs to `host` are terminated and inspected: mode "inspect", or (automatic) L7
// rules for it or a secret bound to it. mode "tunnel" is refused at start for a host with L7 rules; a host with a
// bound secret and mode "tunnel" stays a tunnel (its secret is then never sent).
bool should_inspect(const egress::DomainRules* rules, const SecretBook& secrets, std::string_view host);

// Why a request was refused: the status, the rule for X-Tokfence-Egress and the log row, and a
// message for the agent. Never holds a secret (placeholders are names).
struct Refusal {
  int status = 403;
  std::string rule;
  std::string message;
};

// A string that wipes its storage when it lets go of it: the rewritten head holds secrets.
using WipingString = std::basic_string<char, std::char_traits<char>, WipingAllocator<char>>;

// The request as it goes upstream.
struct Rewritten {
  WipingString head;                        // request line + fields + CRLF; holds the secrets
  std::vector<std::string> secrets_used;    // names, for the log
  // Every secret bound to the destination (views into the book), whether this request carried
  // it or not: a host that stores what one request sent can hand it back to the next.
  std::vector<std::string_view> watch_for;
};

// Checks and rewrites one request head received inside an inspected tunnel to `to`. `secrets`
// must outlive the result (watch_for points into it); `granted` names the secrets this fence was
// given (egress::Policy::secrets): only those are substituted, at most once per request, and only
// in the path or a credential field's value (a placeholder in the query or another field is
// refused: "placeholder-position"). Hop-by-hop fields (Connection and what it
// names, Keep-Alive, Proxy-*, TE, Expect) are dropped and Connection: close added; when secrets
// are bound to the destination, Accept-Encoding is dropped too, so the response comes
// uncompressed and the reflection watch can read it.
std::variant<Rewritten, Refusal> rewrite_request(const http1::RequestHead& head, const egress::Destination& to,
                                                 const egress::DomainRules* rules, const SecretBook& secrets,
                                                 const std::vector<std::string>& granted);

// For a plain-http (absolute-form) forward-proxy request: a refusal when it carries a placeholder
// anywhere in its head (secrets only ever travel inside TLS that tokfence opened itself).
std::optional<Refusal> refuse_placeholder_in_plain_http(const http1::RequestHead& head);

// The response head for the client: hop-by-hop fields dropped (framing fields kept), any
// X-Tokfence-* field dropped (only tokfence names refusals), Connection: close.
std::string rewrite_response_head(const http1::ResponseHead& head);

// For an answer that must be watched: refused when a Content-Encoding is not identity or a
// Transfer-Encoding is not chunked (the bytes could not be checked for the secret).
std::optional<Refusal> refuse_unwatchable(const http1::ResponseHead& head);

// Finds any of the given secrets in a byte stream that arrives in pieces (a match may span
// pieces): as they are, percent-encoded, JSON-escaped ("\/"), in hex, and in base64 (standard
// and URL-safe, at each of the three alignments), compared without regard to case. Other transformations (split, reversed,
// encrypted) are not found: docs/EGRESS.md, "Known limits". Keeps the last (longest - 1) bytes
// seen, wiped when done.
class SecretWatch {
 public:
  explicit SecretWatch(std::vector<std::string_view> secrets);
  ~SecretWatch();
  SecretWatch(const SecretWatch&) = delete;
  SecretWatch& operator=(const SecretWatch&) = delete;
  // true when a secret has appeared in the bytes fed so far (this piece included).
  bool feed(std::string_view piece);
  bool empty() const { return patterns_.empty(); }

 private:
  std::vector<WipingString> patterns_;  // lower case
  std::size_t keep_ = 0;                // longest pattern - 1
  WipingString tail_;
  WipingString piece_;                  // the piece being looked at, lower case
};

}  // namespace tokfence::proxy::inspect
