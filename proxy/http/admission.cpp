#include "proxy/http/admission.hpp"

#include <algorithm>
#include <array>

#include <boost/asio/ip/address.hpp>

#include "proxy/http/routing.hpp"

namespace tokfence::proxy {
namespace {

using http1::iequals;

constexpr std::array<std::string_view, 3> loopback_names = {"127.0.0.1", "localhost", "[::1]"};

// A client's bytes quoted in a message: at most 100 of them, anything unprintable as '?'.
std::string quoted(std::string_view value) {
  std::string out = "'";
  for (std::size_t i = 0; i < value.size() && i < 100; ++i) {
    auto c = static_cast<unsigned char>(value[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  if (value.size() > 100) out += "...";
  return out + "'";
}

std::string own_names_text(const ListenerNames& listener) {
  if (listener.any_port) return "127.0.0.1, localhost or [::1] (any port)";
  std::string port = ":" + std::to_string(listener.port);
  std::string out = "127.0.0.1" + port + ", localhost" + port + " or [::1]" + port;
  if (!listener.host.empty() && listener.host != "127.0.0.1" && listener.host != "[::1]")
    out = listener.host + port + ", " + out;
  return out;
}

}  // namespace

ListenerNames tcp_listener_names(std::string_view configured_host, std::uint16_t port) {
  ListenerNames names;
  names.port = port;
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(std::string(configured_host), ec);
  if (!ec && !address.is_unspecified())
    names.host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return names;
}

const ListenerNames& unix_listener_names() {
  static const ListenerNames names{true, 0, ""};
  return names;
}

bool is_own_host(std::string_view host, const ListenerNames& listener) {
  // host = name [":" port]; in a bracketed IPv6 literal the port's ':' is the one after ']'.
  std::string_view name = host, port;
  auto colon = host.rfind(':');
  const bool has_port = colon != std::string_view::npos && host.find(']', colon) == std::string_view::npos;
  if (has_port) {
    name = host.substr(0, colon);
    port = host.substr(colon + 1);
  }
  bool known = std::any_of(loopback_names.begin(), loopback_names.end(), [&](std::string_view n) { return iequals(name, n); }) ||
               (!listener.host.empty() && iequals(name, listener.host));
  if (!known) return false;
  if (!has_port) return listener.any_port || listener.port == 80;  // a client leaves out only port 80
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return listener.any_port || value == listener.port;
}

bool is_allowed_origin(std::string_view origin, const std::vector<std::string>& allowed) {
  for (const auto& a : allowed)
    if (iequals(origin, a)) return true;
  return false;
}

std::optional<Denial> admit_request(const http1::RequestHead& head, const ListenerNames& listener,
                                    const std::vector<std::string>& allowed_origins) {
  const http1::Header* host = nullptr;
  const http1::Header* origin = nullptr;
  const http1::Header* fetch_site = nullptr;
  bool preflight_header = false;
  int hosts = 0;
  bool foreign_origin = false;  // some Origin field is not allowed (browsers send one)
  for (const auto& f : head.headers) {
    if (iequals(f.name, "host")) {
      host = &f;
      ++hosts;
    } else if (iequals(f.name, "origin")) {
      if (!origin || !is_allowed_origin(f.value, allowed_origins)) origin = &f;
      foreign_origin = foreign_origin || !is_allowed_origin(f.value, allowed_origins);
    } else if (iequals(f.name, "sec-fetch-site")) {
      fetch_site = &f;
    } else if (iequals(f.name, "access-control-request-method")) {
      preflight_header = true;
    }
  }
  if (hosts > 1) return Denial{400, "tokfence_bad_request", "request: more than one Host header"};
  if (!host && head.version_minor >= 1)
    return Denial{400, "tokfence_bad_request", "request: no Host header (HTTP/1.1 requires one)"};
  if (host && !is_own_host(host->value, listener))
    return Denial{403, "tokfence_forbidden_host",
                  "request: Host " + quoted(host->value) + " is not a name of this proxy: send requests to " +
                      own_names_text(listener) +
                      " (a web page that made its own name resolve to 127.0.0.1, DNS rebinding, sends its name here)"};
  if (head.method == "OPTIONS" && (origin || preflight_header))
    return Denial{403, "tokfence_cors_preflight",
                  "request: CORS preflight (OPTIONS" + (origin ? " from Origin " + quoted(origin->value) : std::string()) +
                      ") refused: the proxy answers it itself and never lets a web page call a provider with the key"};
  if (origin && foreign_origin)
    return Denial{403, "tokfence_forbidden_origin",
                  "request: sent by a web page (Origin " + quoted(origin->value) +
                      "): the proxy serves local agents, not browsers; to let that page use it, add its origin to "
                      "[daemon] allowed_origins in config.toml"};
  if (fetch_site && !iequals(fetch_site->value, "none") && !origin)
    return Denial{403, "tokfence_forbidden_origin",
                  "request: sent by a web page (Sec-Fetch-Site " + quoted(fetch_site->value) +
                      ", no Origin): the proxy serves local agents, not browsers"};
  return std::nullopt;
}

std::optional<Denial> method_denial(std::string_view method, std::string_view provider, const ProviderSpec& spec) {
  if (method_allowed(method, spec)) return std::nullopt;
  std::string allow;
  for (const auto& m : spec.methods.empty() ? default_methods() : spec.methods) allow += (allow.empty() ? "" : ", ") + m;
  const std::string name(provider);
  return Denial{405, "tokfence_method_not_allowed",
                "request: method " + std::string(method) + " is not forwarded to '" + name + "' (allowed: " + allow +
                    "; set providers." + name + ".methods)",
                allow};
}

Denial foreign_peer_denial(std::optional<unsigned> peer_uid, unsigned own_uid) {
  if (!peer_uid)
    return Denial{403, "tokfence_forbidden_peer",
                  "caller: the owner of this TCP connection could not be found (not a local socket, or no "
                  "NETLINK_SOCK_DIAG): the proxy serves only the processes of its own user (uid " +
                      std::to_string(own_uid) + ")"};
  return Denial{403, "tokfence_forbidden_peer",
                "caller: this TCP connection belongs to uid " + std::to_string(*peer_uid) +
                    ", not to the daemon's user (uid " + std::to_string(own_uid) +
                    "): the proxy serves only its own user's processes; run the agent as that user, or through "
                    "'tokfence run' / 'tokfence launch'"};
}

}  // namespace tokfence::proxy
