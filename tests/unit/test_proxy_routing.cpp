#include <catch2/catch.hpp>

#include <boost/beast/http/fields.hpp>
#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "proxy/caller.hpp"
#include "proxy/routing.hpp"

using namespace tokfence;
using namespace tokfence::proxy;
namespace http = boost::beast::http;

namespace {

ProviderSpec spec_of(const std::string& name) {
  for (const auto& p : builtin_providers())
    if (p.name == name) return p;
  FAIL("no built-in provider " << name);
  return {};
}

template <class Fields>
std::string value(const Fields& f, std::string_view name) {
  auto it = f.find(name);
  return it == f.end() ? std::string("<absent>") : std::string(it->value());
}

}  // namespace

TEST_CASE("proxy::split_target splits provider, rest and query") {
  auto t = split_target("/openai/v1/chat/completions?a=1&b=2");
  REQUIRE(t);
  CHECK(t->provider == "openai");
  CHECK(t->rest == "/v1/chat/completions");
  CHECK(t->query == "a=1&b=2");
  CHECK(t->has_query);

  auto bare = split_target("/anthropic");
  REQUIRE(bare);
  CHECK(bare->provider == "anthropic");
  CHECK(bare->rest.empty());
  CHECK_FALSE(bare->has_query);

  CHECK_FALSE(split_target("/"));
  CHECK_FALSE(split_target(""));
  CHECK_FALSE(split_target("http://evil.example/openai/v1"));
  CHECK_FALSE(split_target("//x"));
}

TEST_CASE("proxy::parse_upstream_url handles schemes, ports, IPv6 and base paths") {
  auto a = parse_upstream_url("https://api.openai.com/v1");
  REQUIRE(a);
  CHECK(a->tls);
  CHECK(a->host == "api.openai.com");
  CHECK(a->port == "443");
  CHECK(a->base_path == "/v1");
  CHECK(a->host_header() == "api.openai.com");
  CHECK(a->origin() == "https://api.openai.com:443");

  auto b = parse_upstream_url("http://127.0.0.1:8080/");
  REQUIRE(b);
  CHECK_FALSE(b->tls);
  CHECK(b->port == "8080");
  CHECK(b->base_path.empty());
  CHECK(b->host_header() == "127.0.0.1:8080");

  auto c = parse_upstream_url("http://[::1]:11434/api");
  REQUIRE(c);
  CHECK(c->host == "::1");
  CHECK(c->host_header() == "[::1]:11434");

  CHECK_FALSE(parse_upstream_url("ftp://x"));
  CHECK_FALSE(parse_upstream_url("https://"));
  CHECK_FALSE(parse_upstream_url("https://host:99999"));
  CHECK_FALSE(parse_upstream_url("https://host:12ab"));
  CHECK_FALSE(parse_upstream_url("https://host/v1?key=x"));
  auto creds = parse_upstream_url("https://user:pw@host/v1");
  REQUIRE_FALSE(creds);
  CHECK(creds.error().message.find("pw") == std::string::npos);
}

TEST_CASE("proxy::strip_query_credentials drops key parameters and keeps the rest byte for byte") {
  CHECK(strip_query_credentials("alt=sse&key=secret") == "alt=sse");
  CHECK(strip_query_credentials("key=secret") == "");
  CHECK(strip_query_credentials("a=1&API_KEY=s&b=%2F&apikey=s&access_token=t&c") == "a=1&b=%2F&c");
  CHECK(strip_query_credentials("k%65y=encoded-secret&x=1") == "x=1");
  CHECK(strip_query_credentials("keyword=fine&monkey=ok") == "keyword=fine&monkey=ok");
  CHECK(strip_query_credentials("") == "");
}

TEST_CASE("proxy::upstream_target joins base path, rest and the filtered query") {
  auto url = parse_upstream_url("https://api.groq.com/openai");
  REQUIRE(url);
  auto route = split_target("/groq/v1/models?key=s&limit=2");
  REQUIRE(route);
  CHECK(upstream_target(*url, *route) == "/openai/v1/models?limit=2");
  auto root = parse_upstream_url("https://api.anthropic.com");
  auto bare = split_target("/anthropic");
  CHECK(upstream_target(*root, *bare) == "/");
}

TEST_CASE("proxy::build_upstream_headers strips every inbound credential and injects the bearer key") {
  http::fields in;
  in.set("Authorization", "Bearer client");
  in.set("Proxy-Authorization", "Basic client");
  in.set("x-api-key", "client");
  in.set("api-key", "client");
  in.set("x-goog-api-key", "client");
  in.set("Cookie", "session=client");
  in.set("X-Tokfence-Caller", "agent");
  in.set("Host", "127.0.0.1:9471");
  in.set("Content-Length", "12");
  in.set("Accept-Encoding", "gzip");
  in.set("Connection", "keep-alive, X-Private-Hop");
  in.set("X-Private-Hop", "x");
  in.set("Keep-Alive", "timeout=5");
  in.set("Transfer-Encoding", "chunked");
  in.set("Expect", "100-continue");
  in.set("OpenAI-Beta", "assistants=v2");
  in.set("Content-Type", "application/json");
  UpstreamFields out;
  auto url = parse_upstream_url("https://api.openai.com/v1");
  build_upstream_headers(in, out, spec_of("openai"), *url, SecretString("vault-key"));

  CHECK(value(out, "authorization") == "Bearer vault-key");
  for (auto gone : {"proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "x-tokfence-caller",
                    "content-length", "connection", "x-private-hop", "keep-alive", "transfer-encoding", "expect"})
    CHECK(value(out, gone) == "<absent>");
  CHECK(value(out, "host") == "api.openai.com");
  CHECK(value(out, "accept-encoding") == "identity");
  CHECK(value(out, "openai-beta") == "assistants=v2");
  CHECK(value(out, "content-type") == "application/json");
  for (const auto& f : out) CHECK(std::string(f.value()).find("client") == std::string::npos);
}

TEST_CASE("proxy::build_upstream_headers uses x-api-key and a default anthropic-version only when absent") {
  auto url = parse_upstream_url("https://api.anthropic.com");
  http::fields none;
  none.set("authorization", "Bearer client");
  UpstreamFields out;
  build_upstream_headers(none, out, spec_of("anthropic"), *url, SecretString("vault-key"));
  CHECK(value(out, "x-api-key") == "vault-key");
  CHECK(value(out, "authorization") == "<absent>");
  CHECK(value(out, "anthropic-version") == "2023-06-01");

  http::fields client;
  client.set("anthropic-version", "2099-01-01");
  UpstreamFields out2;
  build_upstream_headers(client, out2, spec_of("anthropic"), *url, SecretString("vault-key"));
  CHECK(value(out2, "anthropic-version") == "2099-01-01");
}

TEST_CASE("proxy::build_upstream_headers uses x-goog-api-key for Gemini") {
  auto url = parse_upstream_url("https://generativelanguage.googleapis.com");
  http::fields in;
  in.set("x-goog-api-key", "client");
  UpstreamFields out;
  build_upstream_headers(in, out, spec_of("google"), *url, SecretString("vault-key"));
  CHECK(value(out, "x-goog-api-key") == "vault-key");
  CHECK(value(out, "authorization") == "<absent>");
}

TEST_CASE("proxy::build_client_response_headers drops hop-by-hop headers and keeps the rest") {
  http::fields in;
  in.set("Content-Type", "text/event-stream");
  in.set("Transfer-Encoding", "chunked");
  in.set("Connection", "keep-alive");
  in.set("Retry-After", "3");
  in.set("x-request-id", "abc");
  http::fields out;
  build_client_response_headers(in, out);
  CHECK(value(out, "content-type") == "text/event-stream");
  CHECK(value(out, "retry-after") == "3");
  CHECK(value(out, "x-request-id") == "abc");
  CHECK(value(out, "transfer-encoding") == "<absent>");
  CHECK(value(out, "connection") == "<absent>");
}

TEST_CASE("proxy::error_body is the envelope OpenAI and Anthropic clients display") {
  auto j = nlohmann::json::parse(error_body("tokfence_budget_exceeded", "over budget", {{"limit", "$5.00"}, {"type", "x"}}));
  CHECK(j["error"]["type"] == "tokfence_budget_exceeded");
  CHECK(j["error"]["message"] == "over budget");
  CHECK(j["error"]["limit"] == "$5.00");
  auto plain = nlohmann::json::parse(error_body("tokfence_no_key", "no key"));
  CHECK(plain["error"].size() == 2);
}

TEST_CASE("proxy::is_credential_header and is_hop_by_hop_header are case-insensitive") {
  CHECK(is_credential_header("AUTHORIZATION"));
  CHECK(is_credential_header("X-Goog-Api-Key"));
  CHECK_FALSE(is_credential_header("content-type"));
  CHECK(is_hop_by_hop_header("Transfer-Encoding"));
  CHECK(is_hop_by_hop_header("PROXY-CONNECTION"));
  CHECK_FALSE(is_hop_by_hop_header("anthropic-version"));
}

TEST_CASE("proxy::match_proc_net_tcp_line finds the socket by local address and ports") {
  std::string line =
      "   3: 0100007F:A1B2 0100007F:24F3 01 00000000:00000000 00:00000000 00000000  1000        0 123456 1 "
      "0000000000000000 20 4 30 10 -1";
  CHECK(match_proc_net_tcp_line(line, "0100007F", 0xA1B2, 0x24F3) == 123456);
  CHECK(match_proc_net_tcp_line(line, "0100007F", 0xA1B3, 0x24F3) == 0);
  CHECK(match_proc_net_tcp_line(line, "0100007F", 0xA1B2, 0x24F4) == 0);
  CHECK(match_proc_net_tcp_line("garbage", "0100007F", 1, 2) == 0);
}
