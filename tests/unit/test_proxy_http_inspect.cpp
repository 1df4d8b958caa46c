#include <catch2/catch.hpp>

#include <random>

#include "proxy/http/inspect.hpp"

using namespace tokfence::proxy;
using namespace tokfence::proxy::inspect;
using tokfence::SecretString;

namespace {

// A secret made at run time: no key-shaped literal in the tree.
std::string random_secret() {
  std::random_device rd;
  std::string s = "bound-";
  for (int i = 0; i < 24; ++i) s.push_back("abcdefghijklmnopqrstuvwxyz0123456789"[rd() % 36]);
  return s;
}

// `in_path`: bound for the URL path too (vault add --in path), as a Telegram bot token is.
SecretBook book_with(const std::string& name, const std::string& value, std::vector<std::string> hosts,
                     bool in_path = false) {
  SecretBook book;
  book.emplace(name, BoundSecret{SecretString(value), std::move(hosts), in_path});
  return book;
}

egress::Destination to(const std::string& authority) {
  auto d = egress::parse_authority(authority, 443);
  REQUIRE(d);
  return *d;
}

// Parses `head` (kept alive by the caller) into `out`.
void parse(const std::string& head, http1::RequestHead& out) {
  REQUIRE(http1::parse_request_head(head, out) == http1::Parse::complete);
}

egress::DomainRules rules_from(tokfence::Config::Egress::Domain domain, const std::string& host) {
  tokfence::Config::Egress config;
  config.domains[host] = std::move(domain);
  auto settings = egress::compile_settings(config);
  REQUIRE(settings);
  REQUIRE(settings->domains.size() == 1);
  return settings->domains.front();
}

std::string text(const WipingString& s) { return std::string(s.data(), s.size()); }

}  // namespace

TEST_CASE("inspect: a placeholder becomes the secret only on the way to a host it is bound to") {
  const std::string secret = random_secret();
  const auto book = book_with("telegram-bot", secret, {"api.telegram.org"}, true);
  const std::string head =
      "POST /bottokfence-secret:telegram-bot/getUpdates?x=1 HTTP/1.1\r\nHost: api.telegram.org\r\n"
      "X-Client: other\r\nAccept-Encoding: gzip\r\nConnection: keep-alive, X-Hop\r\n"
      "X-Hop: 1\r\nProxy-Authorization: x\r\nContent-Length: 0\r\n\r\n";
  http1::RequestHead request;
  parse(head, request);
  auto result = rewrite_request(request, to("api.telegram.org:443"), nullptr, book, {"telegram-bot"});
  REQUIRE(std::holds_alternative<Rewritten>(result));
  const auto& out = std::get<Rewritten>(result);
  const std::string sent = text(out.head);
  CHECK(sent.starts_with("POST /bot" + secret + "/getUpdates?x=1 HTTP/1.1\r\n"));
  CHECK(sent.find("X-Client: other\r\n") != std::string::npos);
  CHECK(sent.find("tokfence-secret:") == std::string::npos);
  // Hop-by-hop fields (and the one Connection names) go; Accept-Encoding too, so the response
  // can be watched; Connection: close is added.
  CHECK(sent.find("X-Hop") == std::string::npos);
  CHECK(sent.find("Proxy-Authorization") == std::string::npos);
  CHECK(sent.find("Accept-Encoding") == std::string::npos);
  CHECK(sent.ends_with("Content-Length: 0\r\nConnection: close\r\n\r\n"));
  CHECK(out.secrets_used == std::vector<std::string>{"telegram-bot"});
  REQUIRE(out.watch_for.size() == 1);
  CHECK(out.watch_for.front() == secret);
}

TEST_CASE("inspect: a placeholder for another host, an unknown name or a malformed one is refused") {
  const std::string secret = random_secret();
  const auto book = book_with("gh", secret, {"api.github.com", "*.githubusercontent.com"});
  auto refusal = [&](const std::string& head, const std::string& authority) {
    http1::RequestHead request;
    parse(head, request);
    auto result = rewrite_request(request, to(authority), nullptr, book, {"gh"});
    REQUIRE(std::holds_alternative<Refusal>(result));
    return std::get<Refusal>(result);
  };
  auto r = refusal("GET / HTTP/1.1\r\nHost: evil.example\r\nAuthorization: token tokfence-secret:gh\r\n\r\n", "evil.example:443");
  CHECK(r.status == 403);
  CHECK(r.rule == "secret-not-bound");
  CHECK(r.message.find(secret) == std::string::npos);
  CHECK(r.message.find("api.github.com") != std::string::npos);
  // In the target too, and for a name that only looks like a subdomain match.
  CHECK(refusal("GET /tokfence-secret:gh HTTP/1.1\r\nHost: githubusercontent.com\r\n\r\n", "githubusercontent.com:443").rule ==
        "secret-not-bound");
  CHECK(refusal("GET / HTTP/1.1\r\nHost: api.github.com\r\nAuthorization: tokfence-secret:nope\r\n\r\n", "api.github.com:443").rule ==
        "secret-unknown");
  CHECK(refusal("GET / HTTP/1.1\r\nHost: api.github.com\r\nAuthorization: tokfence-secret:\r\n\r\n", "api.github.com:443").rule ==
        "bad-placeholder");
  // A wildcard binding reaches subdomains.
  http1::RequestHead ok;
  const std::string head = "GET / HTTP/1.1\r\nHost: raw.githubusercontent.com\r\nX-Api-Key: tokfence-secret:gh\r\n\r\n";
  parse(head, ok);
  CHECK(std::holds_alternative<Rewritten>(rewrite_request(ok, to("raw.githubusercontent.com:443"), nullptr, book, {"gh"})));
}

TEST_CASE("inspect: the request must be for the tunnel's host, in origin form, without an upgrade") {
  const SecretBook none;
  auto rule_of = [&](const std::string& head) {
    http1::RequestHead request;
    parse(head, request);
    auto result = rewrite_request(request, to("api.github.com:443"), nullptr, none, {});
    return std::holds_alternative<Refusal>(result) ? std::get<Refusal>(result).rule : std::string("ok");
  };
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com\r\n\r\n") == "ok");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: API.GitHub.com:443\r\n\r\n") == "ok");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: other.example\r\n\r\n") == "host-mismatch");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com:8443\r\n\r\n") == "host-mismatch");
  CHECK(rule_of("GET / HTTP/1.1\r\n\r\n") == "no-host");
  CHECK(rule_of("GET http://api.github.com/ HTTP/1.1\r\nHost: api.github.com\r\n\r\n") == "bad-target");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n") == "upgrade");
}

TEST_CASE("inspect: methods and path rules, with paths normalised before matching") {
  tokfence::Config::Egress::Domain d;
  d.mode = "inspect";
  d.methods = {"get", "HEAD"};
  d.allow_paths = {"/repos/", "/user"};
  d.deny_paths = {"/repos/*/settings"};
  const auto rules = rules_from(d, "api.github.com");
  CHECK(rules.methods == std::vector<std::string>{"GET", "HEAD"});
  const SecretBook none;
  auto rule_of = [&](const std::string& method, const std::string& target) {
    const std::string head = method + " " + target + " HTTP/1.1\r\nHost: api.github.com\r\n\r\n";
    http1::RequestHead request;
    parse(head, request);
    auto result = rewrite_request(request, to("api.github.com:443"), &rules, none, {});
    return std::holds_alternative<Refusal>(result) ? std::get<Refusal>(result).rule : std::string("ok");
  };
  CHECK(rule_of("GET", "/repos/a/b/issues?state=open") == "ok");
  CHECK(rule_of("GET", "/user") == "ok");
  CHECK(rule_of("GET", "/user/keys") == "ok");
  CHECK(rule_of("GET", "/users") == "allow_paths");  // a prefix ends at a segment boundary
  CHECK(rule_of("POST", "/repos/a/b/issues") == "methods");
  CHECK(rule_of("GET", "/repos/a/b/settings") == "deny_paths:/repos/*/settings");
  // Encodings and dot segments that a server would resolve to a denied path.
  CHECK(rule_of("GET", "/repos/a/b/se%74tings") == "deny_paths:/repos/*/settings");
  CHECK(rule_of("GET", "/repos/a/b/x/../settings") == "ambiguous-path");
  CHECK(rule_of("GET", "/repos/a/b/%2e%2e/settings") == "ambiguous-path");
  CHECK(rule_of("GET", "/repos/a%2fb/settings") == "ambiguous-path");
  CHECK(rule_of("GET", "/repos//a/b/settings") == "ambiguous-path");
  CHECK(rule_of("GET", "/repos\\a") == "ambiguous-path");
  CHECK(rule_of("GET", "/repos/a/b/SETTINGS") == "deny_paths:/repos/*/settings");
  CHECK(rule_of("GET", "/gists") == "allow_paths");
}

TEST_CASE("inspect: which hosts are inspected") {
  const auto book = book_with("bot", random_secret(), {"api.telegram.org"});
  CHECK(should_inspect(nullptr, book, "api.telegram.org"));
  CHECK_FALSE(should_inspect(nullptr, book, "telegram.org"));
  tokfence::Config::Egress::Domain tunnel;
  tunnel.mode = "tunnel";
  const auto as_tunnel = rules_from(tunnel, "api.telegram.org");
  CHECK_FALSE(should_inspect(&as_tunnel, book, "api.telegram.org"));
  tokfence::Config::Egress::Domain l7;
  l7.methods = {"GET"};
  const auto with_rules = rules_from(l7, "*.example.com");
  CHECK(should_inspect(&with_rules, {}, "a.example.com"));
  // L7 rules on a tunnel are a contradiction, refused when config.toml is read.
  tunnel.methods = {"GET"};
  tokfence::Config::Egress config;
  config.domains["x.example"] = tunnel;
  CHECK_FALSE(egress::compile_settings(config));
}

TEST_CASE("inspect: placeholders in a plain-http request are refused") {
  const std::string with = "GET http://h.example/?k=tokfence-secret:bot HTTP/1.1\r\nHost: h.example\r\n\r\n";
  const std::string without = "GET http://h.example/ HTTP/1.1\r\nHost: h.example\r\n\r\n";
  http1::RequestHead a, b;
  parse(with, a);
  parse(without, b);
  REQUIRE(refuse_placeholder_in_plain_http(a));
  CHECK(refuse_placeholder_in_plain_http(a)->rule == "secret-over-plain-http");
  CHECK_FALSE(refuse_placeholder_in_plain_http(b));
}

TEST_CASE("inspect: the response head says Connection: close and drops hop-by-hop fields") {
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\nX-Kept: y\r\n\r\nok";
  http1::ResponseHead response;
  REQUIRE(http1::parse_response_head(head, "GET", response) == http1::Parse::complete);
  const std::string out = rewrite_response_head(response);
  CHECK(out == "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Kept: y\r\nConnection: close\r\n\r\n");
}

TEST_CASE("inspect: SecretWatch finds a secret split across pieces, and nothing in clean bytes") {
  const std::string secret = random_secret();
  for (std::size_t cut = 0; cut <= secret.size(); ++cut) {
    SecretWatch watch({secret});
    CHECK_FALSE(watch.feed("prefix text "));
    const bool first = watch.feed(secret.substr(0, cut));
    const bool second = watch.feed(secret.substr(cut) + " suffix");
    CHECK((first || second));
  }
  // One byte at a time.
  SecretWatch bytes({secret});
  bool found = false;
  for (char c : "xx" + secret + "yy") found = found || bytes.feed(std::string_view(&c, 1));
  CHECK(found);
  SecretWatch clean({secret});
  // Everything but the secret's last character, again and again: never the whole of it.
  for (int i = 0; i < 100; ++i) CHECK_FALSE(clean.feed(secret.substr(0, secret.size() - 1) + "\n"));
  SecretWatch nothing({});
  CHECK(nothing.empty());
  CHECK_FALSE(nothing.feed(secret));
}

TEST_CASE("inspect: a secret goes to its host on port 443 only") {
  const auto book = book_with("bot", random_secret(), {"api.telegram.org"});
  const std::string head = "GET / HTTP/1.1\r\nHost: api.telegram.org:8443\r\nAuthorization: tokfence-secret:bot\r\n\r\n";
  http1::RequestHead request;
  parse(head, request);
  auto result = rewrite_request(request, to("api.telegram.org:8443"), nullptr, book, {"bot"});
  REQUIRE(std::holds_alternative<Refusal>(result));
  CHECK(std::get<Refusal>(result).rule == "secret-not-bound");
}

TEST_CASE("inspect: two Host fields, framing named in Connection, override headers under rules are refused") {
  tokfence::Config::Egress::Domain d;
  d.methods = {"GET"};
  const auto rules = rules_from(d, "api.github.com");
  const SecretBook none;
  auto rule_of = [&](const std::string& head, const egress::DomainRules* r) {
    http1::RequestHead request;
    parse(head, request);
    auto result = rewrite_request(request, to("api.github.com:443"), r, none, {});
    return std::holds_alternative<Refusal>(result) ? std::get<Refusal>(result).rule : std::string("ok");
  };
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com\r\nHost: evil.example\r\n\r\n", nullptr) == "duplicate-host");
  CHECK(rule_of("POST / HTTP/1.1\r\nHost: api.github.com\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n", nullptr) ==
        "bad-connection-field");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com\r\nConnection: keep-alive, Host\r\n\r\n", nullptr) == "bad-connection-field");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com\r\nX-HTTP-Method-Override: DELETE\r\n\r\n", &rules) == "override-header");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com\r\nX-Original-URL: /admin\r\n\r\n", &rules) == "override-header");
  CHECK(rule_of("GET / HTTP/1.1\r\nHost: api.github.com\r\nX-HTTP-Method-Override: DELETE\r\n\r\n", nullptr) == "ok");
}

TEST_CASE("inspect: path tricks servers disagree about are refused under path rules") {
  tokfence::Config::Egress::Domain d;
  d.deny_paths = {"/admin"};
  const auto rules = rules_from(d, "x.example");
  const SecretBook none;
  auto rule_of = [&](const std::string& target) {
    const std::string head = "GET " + target + " HTTP/1.1\r\nHost: x.example\r\n\r\n";
    http1::RequestHead request;
    parse(head, request);
    auto result = rewrite_request(request, to("x.example:443"), &rules, none, {});
    return std::holds_alternative<Refusal>(result) ? std::get<Refusal>(result).rule : std::string("ok");
  };
  CHECK(rule_of("/public") == "ok");
  CHECK(rule_of("/administrator") == "ok");
  CHECK(rule_of("/ADMIN") == "deny_paths:/admin");
  CHECK(rule_of("/Admin/x") == "deny_paths:/admin");
  CHECK(rule_of("/%41dmin") == "deny_paths:/admin");
  for (const char* tricky : {"/admin;x=1", "/x/..;/admin", "/admin%3b", "/admin%20", "/admin.", "/admin#x", "/admin%00"})
    CHECK(rule_of(tricky) == "ambiguous-path");
}

TEST_CASE("inspect: SecretWatch finds the secret percent-encoded, in base64 at any alignment, in another case") {
  const std::string secret = "123456:" + random_secret();  // a Telegram-shaped token, ':' included
  auto seen = [&](const std::string& text) {
    SecretWatch watch({secret});
    bool found = false;
    for (std::size_t i = 0; i < text.size(); i += 5) found = watch.feed(std::string_view(text).substr(i, 5)) || found;
    return found;
  };
  std::string upper = secret;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(seen("x" + upper + "y"));
  std::string encoded = secret;
  encoded.replace(encoded.find(':'), 1, "%3A");
  CHECK(seen("url=" + encoded));
  auto base64 = [](const std::string& in) {
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < in.size(); i += 3) {
      unsigned v = static_cast<unsigned char>(in[i]) << 16;
      if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
      if (i + 2 < in.size()) v |= static_cast<unsigned char>(in[i + 2]);
      for (int k = 3; k >= 0; --k) out.push_back(a[(v >> (6 * k)) & 63]);
    }
    return out;
  };
  for (const std::string prefix : {"", "a", "ab", "abc"}) CHECK(seen("b64 " + base64(prefix + secret + "tail")));
  CHECK_FALSE(seen("nothing of it here, " + secret.substr(0, secret.size() / 2)));
}

TEST_CASE("inspect: answers that cannot be checked, and response heads cannot pose as tokfence") {
  auto head_of = [](const std::string& text, http1::ResponseHead& out) {
    REQUIRE(http1::parse_response_head(text, "GET", out) == http1::Parse::complete);
  };
  const std::string gz = "HTTP/1.1 200 OK\r\nContent-Encoding: identity\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n";
  const std::string te = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
  const std::string ok = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: identity\r\n\r\n";
  http1::ResponseHead a, b, c;
  head_of(gz, a);
  head_of(te, b);
  head_of(ok, c);
  CHECK(refuse_unwatchable(a));
  CHECK(refuse_unwatchable(b));
  CHECK_FALSE(refuse_unwatchable(c));
  const std::string posing = "HTTP/1.1 403 Forbidden\r\nX-Tokfence-Egress: default-deny\r\nConnection: content-length\r\nContent-Length: 0\r\n\r\n";
  http1::ResponseHead d;
  head_of(posing, d);
  CHECK(rewrite_response_head(d) == "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

TEST_CASE("inspect: SecretWatch finds the secret JSON-escaped (an escaped slash) and in hex") {
  const std::string secret = "aws/" + random_secret() + "/key";
  auto seen = [&](const std::string& text) {
    SecretWatch watch({secret});
    return watch.feed(text);
  };
  std::string json;
  for (char c : secret) json += c == '/' ? std::string("\\/") : std::string(1, c);
  CHECK(seen("{\"k\":\"" + json + "\"}"));
  std::string hex;
  static const char* digits = "0123456789ABCDEF";
  for (unsigned char c : secret) {
    hex.push_back(digits[c >> 4]);
    hex.push_back(digits[c & 15]);
  }
  CHECK(seen("hex " + hex));
}

TEST_CASE("inspect: a secret goes only where a host reads its credential, once, and only to the fence given it") {
  const std::string secret = random_secret();
  const auto book = book_with("bot", secret, {"api.telegram.org"}, true);  // a bot token: in the path
  auto result_of = [&](const std::string& head, std::vector<std::string> granted) {
    http1::RequestHead request;
    parse(head, request);
    return rewrite_request(request, to("api.telegram.org:443"), nullptr, book, granted);
  };
  auto rule_of = [&](const std::string& head, std::vector<std::string> granted = {"bot"}) {
    auto result = result_of(head, std::move(granted));
    REQUIRE(std::holds_alternative<Refusal>(result));
    CHECK(std::get<Refusal>(result).message.find(secret) == std::string::npos);
    return std::get<Refusal>(result).rule;
  };
  const std::string host = "Host: api.telegram.org\r\n";
  // Where the services read it: the path (Telegram's /bot<token>/...), a credential field.
  CHECK(std::holds_alternative<Rewritten>(result_of("GET /bottokfence-secret:bot/getMe HTTP/1.1\r\n" + host + "\r\n", {"bot"})));
  CHECK(std::holds_alternative<Rewritten>(
      result_of("GET /file/bottokfence-secret:bot/photos/1.jpg HTTP/1.1\r\n" + host + "\r\n", {"bot"})));
  CHECK(std::holds_alternative<Rewritten>(
      result_of("GET /x HTTP/1.1\r\n" + host + "Authorization: Bot tokfence-secret:bot\r\n\r\n", {"bot"})));
  // In the query (a webhook URL, a message's text), in any other field (an audit-log reason), or a
  // second copy next to the credential: refused, whatever the name.
  CHECK(rule_of("GET /bottokfence-secret:bot/setWebhook?url=https%3A%2F%2Fa.example%2Ftokfence-secret:bot HTTP/1.1\r\n" + host +
                "\r\n") == "placeholder-position");
  CHECK(rule_of("GET /botX/sendMessage?chat_id=1&text=tokfence-secret:bot HTTP/1.1\r\n" + host + "\r\n") ==
        "placeholder-position");
  CHECK(rule_of("GET /x HTTP/1.1\r\n" + host + "X-Audit-Log-Reason: tokfence-secret:bot\r\n\r\n") == "placeholder-position");
  CHECK(rule_of("GET /bottokfence-secret:bot/x HTTP/1.1\r\n" + host + "Authorization: tokfence-secret:bot\r\n\r\n") ==
        "placeholder-position");
  CHECK(rule_of("GET /tokfence-secret:bot/tokfence-secret:bot HTTP/1.1\r\n" + host + "\r\n") == "placeholder-position");
  // Beside a credential of the agent's own (a field, a key= parameter), the placeholder is data on
  // the agent's account: a file named after the secret in the agent's repository (review 12a E1).
  CHECK(rule_of("PUT /repos/a/loot/contents/tokfence-secret:bot HTTP/1.1\r\n" + host + "Authorization: token own\r\n\r\n") ==
        "placeholder-position");
  CHECK(rule_of("PUT /loot/tokfence-secret:bot HTTP/1.1\r\n" + host + "Cookie: session=own\r\n\r\n") ==
        "placeholder-position");
  CHECK(rule_of("PUT /loot/tokfence-secret:bot?key=own HTTP/1.1\r\n" + host + "\r\n") == "placeholder-position");
  CHECK(std::holds_alternative<Rewritten>(
      result_of("GET /bottokfence-secret:bot/getMe?offset=1 HTTP/1.1\r\n" + host + "Authorization:\r\n\r\n", {"bot"})));
  // Basic credentials (git sends a token as the password): the placeholder is found in the decoded
  // "user:password", replaced, and the value encoded again; still once per request.
  auto b64 = [](const std::string& in) {
    static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 3 <= in.size(); i += 3) {
      unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8 | (unsigned char)in[i + 2];
      for (int k = 3; k >= 0; --k) out += a[(v >> (6 * k)) & 63];
    }
    if (in.size() - i == 1) {
      unsigned v = (unsigned char)in[i] << 16;
      out += std::string{a[v >> 18 & 63], a[v >> 12 & 63], '=', '='};
    } else if (in.size() - i == 2) {
      unsigned v = (unsigned char)in[i] << 16 | (unsigned char)in[i + 1] << 8;
      out += std::string{a[v >> 18 & 63], a[v >> 12 & 63], a[v >> 6 & 63], '='};
    }
    return out;
  };
  for (const std::string user : {"x-access-token", "ab", "abc"}) {  // every padding length
    auto basic = result_of("GET /repo.git/info/refs HTTP/1.1\r\n" + host + "Authorization: Basic " +
                               b64(user + ":tokfence-secret:bot") + "\r\n\r\n",
                           {"bot"});
    REQUIRE(std::holds_alternative<Rewritten>(basic));
    CHECK(text(std::get<Rewritten>(basic).head).find("Authorization: Basic " + b64(user + ":" + secret) + "\r\n") !=
          std::string::npos);
  }
  CHECK(rule_of("GET /bottokfence-secret:bot/x HTTP/1.1\r\n" + host + "Authorization: Basic " +
                b64("u:tokfence-secret:bot") + "\r\n\r\n") == "placeholder-position");
  CHECK(rule_of("GET /x HTTP/1.1\r\n" + host + "Authorization: Basic " + b64("u:tokfence-secret:nope") + "\r\n\r\n") ==
        "secret-unknown");
  // Only the whole password (review 13a O2): as the user name beside a password of the agent's own
  // the secret would be a login name on the agent's account; nor with more text in the password,
  // nor alone (no user:password split).
  for (const std::string decoded : {"tokfence-secret:bot:own-password", "tokfence-secret:bot:", "tokfence-secret:bot",
                                    "u:tokfence-secret:bot:own", "u:own-tokfence-secret:bot", "u:tokfence-secret:botx y"}) {
    INFO(decoded);
    CHECK(rule_of("GET /x HTTP/1.1\r\n" + host + "Authorization: Basic " + b64(decoded) + "\r\n\r\n") ==
          "placeholder-position");
  }
  CHECK(std::holds_alternative<Rewritten>(
      result_of("GET /x HTTP/1.1\r\n" + host + "Authorization: Basic " + b64(":tokfence-secret:bot") + "\r\n\r\n", {"bot"})));
  // A secret this fence was not given is the same answer as one that does not exist: no oracle.
  auto unknown = result_of("GET /bottokfence-secret:nope/getMe HTTP/1.1\r\n" + host + "\r\n", {"bot"});
  auto not_given = result_of("GET /bottokfence-secret:bot/getMe HTTP/1.1\r\n" + host + "\r\n", {"other"});
  REQUIRE(std::holds_alternative<Refusal>(unknown));
  REQUIRE(std::holds_alternative<Refusal>(not_given));
  CHECK(std::get<Refusal>(not_given).rule == "secret-unknown");
  auto without_name = [](std::string m, const std::string& name) {
    for (auto at = m.find(name); at != std::string::npos; at = m.find(name)) m.erase(at, name.size());
    return m;
  };
  CHECK(without_name(std::get<Refusal>(unknown).message, "nope") == without_name(std::get<Refusal>(not_given).message, "bot"));
  CHECK(rule_of("GET /bottokfence-secret:bot/getMe HTTP/1.1\r\n" + host + "\r\n", {}) == "secret-unknown");
}

TEST_CASE("inspect: a secret bound for credential fields only is never written into the path (review 13a P1)") {
  const std::string secret = random_secret();
  const auto book = book_with("gl", secret, {"gitlab.example"});  // vault add gl --host gitlab.example
  auto result_of = [&](const std::string& head) {
    http1::RequestHead request;
    parse(head, request);
    return rewrite_request(request, to("gitlab.example:443"), nullptr, book, {"gl"});
  };
  auto refusal_of = [&](const std::string& head) {
    auto result = result_of(head);
    REQUIRE(std::holds_alternative<Refusal>(result));
    CHECK(std::get<Refusal>(result).message.find(secret) == std::string::npos);
    return std::get<Refusal>(result);
  };
  const std::string line = "POST /api/v4/projects/attacker%2Floot/repository/files/tokfence-secret:gl HTTP/1.1\r\n";
  const std::string host = "Host: gitlab.example\r\n";
  // Whatever carries the agent's own credential, listed or not, or none at all: refused, and the
  // message names the fix.
  for (const std::string own : {"PRIVATE-TOKEN: own\r\n", "X-Shopify-Access-Token: own\r\n", "X-Auth-Key: own\r\n",
                                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 17\r\n",
                                "Authorization: Bearer own\r\n", ""}) {
    INFO(own);
    const auto r = refusal_of(line + host + own + "\r\n");
    CHECK(r.status == 403);
    CHECK(r.rule == "placeholder-position");
    CHECK(r.message.find("--in path") != std::string::npos);
    CHECK(r.message.find("--host gitlab.example") != std::string::npos);
  }
  CHECK(refusal_of("GET /x/tokfence-secret:gl/y HTTP/1.1\r\n" + host + "\r\n").rule == "placeholder-position");
  // Its own position, a credential field (Basic's password too), still works.
  auto bearer = result_of("GET /api/v4/user HTTP/1.1\r\n" + host + "Authorization: Bearer tokfence-secret:gl\r\n\r\n");
  REQUIRE(std::holds_alternative<Rewritten>(bearer));
  CHECK(text(std::get<Rewritten>(bearer).head).find("Authorization: Bearer " + secret + "\r\n") != std::string::npos);
  // Bound for the path, the same request line goes (the own-credential rule still applies there).
  const auto path_book = book_with("gl", secret, {"gitlab.example"}, true);
  http1::RequestHead request;
  const std::string bare = line + host + "Content-Length: 0\r\n\r\n";
  parse(bare, request);
  auto in_path = rewrite_request(request, to("gitlab.example:443"), nullptr, path_book, {"gl"});
  REQUIRE(std::holds_alternative<Rewritten>(in_path));
  CHECK(text(std::get<Rewritten>(in_path).head).starts_with("POST /api/v4/projects/attacker%2Floot/repository/files/" + secret));
  // Review 14a O3: an encoded '?' or '#' (or '%') anywhere in such a path: a front end that decodes
  // before splitting would read the secret as the query or fragment. Refused, bound for the path or not.
  for (const std::string path : {"/bottokfence-secret:gl/x%3Fmsg=1", "/x%3ftext=tokfence-secret:gl", "/x%23tokfence-secret:gl",
                                 "/x%253Ftext=tokfence-secret:gl"}) {
    INFO(path);
    http1::RequestHead escaped;
    const std::string wire = "GET " + path + " HTTP/1.1\r\n" + host + "\r\n";  // the head points into it
    parse(wire, escaped);
    auto result = rewrite_request(escaped, to("gitlab.example:443"), nullptr, path_book, {"gl"});
    REQUIRE(std::holds_alternative<Refusal>(result));
    CHECK(std::get<Refusal>(result).rule == "placeholder-position");
    CHECK(std::get<Refusal>(result).message.find("encoded '?'") != std::string::npos);
  }
}
