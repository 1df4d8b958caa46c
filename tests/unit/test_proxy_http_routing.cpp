#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "core/config.hpp"
#include "core/peer.hpp"
#include "proxy/http/routing.hpp"

using namespace tokfence;
using namespace tokfence::proxy;

namespace {

ProviderSpec spec_of(const std::string& name) {
  for (const auto& p : builtin_providers())
    if (p.name == name) return p;
  FAIL("no built-in provider " << name);
  return {};
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

namespace {

// Parses `text` (a request head) and returns it; the strings stay alive in
// a store for the test run, since heads are views.
http1::RequestHead parsed_request(const std::string& text) {
  static std::vector<std::unique_ptr<std::string>> store;
  store.push_back(std::make_unique<std::string>(text));
  http1::RequestHead head;
  REQUIRE(http1::parse_request_head(*store.back(), head) == http1::Parse::complete);
  return head;
}

std::string upstream_head_of(const std::string& request, const std::string& provider, const std::string& upstream,
                             std::optional<std::uint64_t> length = std::nullopt) {
  auto in = parsed_request(request);
  auto url = parse_upstream_url(upstream);
  REQUIRE(url);
  WipingString out;
  auto route = split_target(in.target);
  REQUIRE(route);
  build_upstream_head(in, *route, length, spec_of(provider), *url, SecretString("vault-key"), out);
  return std::string(out.data(), out.size());
}

std::string field(const http1::Head& head, std::string_view name) {
  auto h = head.find(name);
  return h ? std::string(h->value) : std::string("<absent>");
}

int count_fields(const http1::Head& head, std::string_view name) {
  int n = 0;
  for (const auto& f : head.headers) n += http1::iequals(f.name, name);
  return n;
}

}  // namespace

TEST_CASE("proxy::build_upstream_head strips every inbound credential and injects the bearer key") {
  std::string request =
      "POST /openai/chat/completions?key=client&limit=2 HTTP/1.1\r\n"
      "Authorization: Bearer client\r\n"
      "Proxy-Authorization: Basic client\r\n"
      "x-api-key: client\r\n"
      "api-key: client\r\n"
      "x-goog-api-key: client\r\n"
      "Cookie: session=client\r\n"
      "X-Tokfence-Caller: agent\r\n"
      "Host: 127.0.0.1:9471\r\n"
      "Accept-Encoding: gzip\r\n"
      "Connection: keep-alive, X-Private-Hop\r\n"
      "X-Private-Hop: x\r\n"
      "Keep-Alive: timeout=5\r\n"
      "Transfer-Encoding: chunked\r\n"
      "Expect: 100-continue\r\n"
      "OpenAI-Beta: assistants=v2\r\n"
      "Content-Type: application/json\r\n\r\n";
  std::string text = upstream_head_of(request, "openai", "https://api.openai.com/v1", 12);
  // base path + rest, the query without its credential
  CHECK(text.starts_with("POST /v1/chat/completions?limit=2 HTTP/1.1\r\n"));
  CHECK(text.ends_with("\r\n\r\n"));
  auto out = parsed_request(text);
  CHECK(field(out, "authorization") == "Bearer vault-key");
  for (auto gone : {"proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "x-tokfence-caller",
                    "connection", "x-private-hop", "keep-alive", "transfer-encoding", "expect"})
    CHECK(field(out, gone) == "<absent>");
  CHECK(field(out, "content-length") == "12");  // the body's real length, set by the proxy
  CHECK(field(out, "host") == "api.openai.com");
  CHECK(field(out, "accept-encoding") == "identity");
  CHECK(field(out, "openai-beta") == "assistants=v2");
  CHECK(field(out, "content-type") == "application/json");
  for (const auto& f : out.headers) CHECK(std::string(f.value).find("client") == std::string::npos);
  // Exactly one of each injected field.
  CHECK(count_fields(out, "host") == 1);
  CHECK(count_fields(out, "authorization") == 1);
}

TEST_CASE("proxy::build_upstream_head drops method and path overrides in any spelling") {
  std::string request =
      "POST /google/v1beta/cachedContents/abc HTTP/1.1\r\n"
      "X-HTTP-Method-Override: DELETE\r\n"
      "x-http-method: DELETE\r\n"
      "X-Method-Override: DELETE\r\n"
      "X-Original-Method: DELETE\r\n"
      "X-Original-URL: /v1beta/tunedModels/victim\r\n"
      "X-Rewrite-URL: /v1beta/files/x\r\n"
      "X_HTTP_Method_Override: DELETE\r\n"
      "X-HTTP-Method-Overrides: kept\r\n"
      "Content-Type: application/json\r\n\r\n";
  auto out = parsed_request(upstream_head_of(request, "google", "https://generativelanguage.googleapis.com", 2));
  CHECK(out.method == "POST");
  for (const auto& f : out.headers) CHECK_FALSE(is_override_header_name(f.name));
  CHECK(count_fields(out, "x_http_method_override") == 0);
  CHECK(field(out, "x-http-method-overrides") == "kept");  // only the exact names (and '_' spellings)
  CHECK(field(out, "content-type") == "application/json");
}

TEST_CASE("proxy::build_upstream_head sets no Content-Length for a request without a body") {
  auto out = parsed_request(upstream_head_of("GET /openai/v1/models HTTP/1.1\r\nContent-Length: 5\r\n\r\n", "openai",
                                             "http://127.0.0.1:8080"));
  CHECK(out.method == "GET");
  CHECK(field(out, "content-length") == "<absent>");
  CHECK(field(out, "host") == "127.0.0.1:8080");
}

TEST_CASE("proxy::build_upstream_head uses x-api-key and a default anthropic-version only when absent") {
  auto out = parsed_request(upstream_head_of("POST /anthropic/v1/messages HTTP/1.1\r\nauthorization: Bearer client\r\n\r\n",
                                             "anthropic", "https://api.anthropic.com"));
  CHECK(field(out, "x-api-key") == "vault-key");
  CHECK(field(out, "authorization") == "<absent>");
  CHECK(field(out, "anthropic-version") == "2023-06-01");

  auto out2 = parsed_request(upstream_head_of("POST /anthropic/v1/messages HTTP/1.1\r\nanthropic-version: 2099-01-01\r\n\r\n",
                                              "anthropic", "https://api.anthropic.com"));
  CHECK(field(out2, "anthropic-version") == "2099-01-01");
  CHECK(count_fields(out2, "anthropic-version") == 1);
}

TEST_CASE("proxy::build_upstream_head uses x-goog-api-key for Gemini") {
  auto out = parsed_request(upstream_head_of("POST /google/v1beta/x HTTP/1.1\r\nx-goog-api-key: client\r\n\r\n", "google",
                                             "https://generativelanguage.googleapis.com"));
  CHECK(field(out, "x-goog-api-key") == "vault-key");
  CHECK(field(out, "authorization") == "<absent>");
}

TEST_CASE("proxy::append_client_response_headers drops hop-by-hop headers and keeps the rest") {
  std::string text =
      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n"
      "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\nRetry-After: 3\r\nx-request-id: abc\r\n\r\n";
  http1::ResponseHead in;
  REQUIRE(http1::parse_response_head(text, "POST", in) == http1::Parse::complete);
  std::string out = "HTTP/1.1 200 OK\r\n";
  append_client_response_headers(in, out);
  out += "\r\n";
  http1::ResponseHead back;
  REQUIRE(http1::parse_response_head(out, "POST", back) == http1::Parse::complete);
  CHECK(field(back, "content-type") == "text/event-stream");
  CHECK(field(back, "retry-after") == "3");
  CHECK(field(back, "x-request-id") == "abc");
  CHECK(field(back, "transfer-encoding") == "<absent>");
  CHECK(field(back, "content-length") == "<absent>");  // beside Transfer-Encoding: the proxy frames the body
  CHECK(field(back, "connection") == "<absent>");
  CHECK(field(back, "x-hop") == "<absent>");

  std::string sized = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
  REQUIRE(http1::parse_response_head(sized, "POST", in) == http1::Parse::complete);
  std::string kept;
  append_client_response_headers(in, kept);
  CHECK(kept == "Content-Length: 2\r\n");
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

TEST_CASE("proxy::strip_query_credentials compares names the way a lenient server reads them") {
  // Control and space characters dropped, %XX decoded, case folded, '_' as '-', "[...]" ignored.
  CHECK(strip_query_credentials("key%00=s&a=1") == "a=1");
  CHECK(strip_query_credentials("%20key=s&a=1") == "a=1");
  CHECK(strip_query_credentials("+key=s&a=1") == "a=1");
  CHECK(strip_query_credentials("k%09ey=s&a=1") == "a=1");
  CHECK(strip_query_credentials("KEY=s&Api-Key=s&API%5fKEY=s&a=1") == "a=1");
  CHECK(strip_query_credentials("token=s&access-token=s&auth_token=s&id_token=s&a=1") == "a=1");
  CHECK(strip_query_credentials("authorization=Bearer%20s&bearer=s&client_secret=s&password=s&a=1") == "a=1");
  CHECK(strip_query_credentials("key[]=s&key[0]=s&a=1") == "a=1");
  // Servers that split on ';' too: the whole part goes.
  CHECK(strip_query_credentials("a=1;key=s&b=2") == "b=2");
  // Look-alikes stay.
  CHECK(strip_query_credentials("pageToken=x&keys=1&tokens=2&monkey=3&alt=sse") == "pageToken=x&keys=1&tokens=2&monkey=3&alt=sse");
  CHECK(strip_query_credentials("%=1&a%zz=2") == "%=1&a%zz=2");
}

TEST_CASE("proxy::is_credential_header folds case and '_' like CGI servers do") {
  for (auto name : {"X_Api_Key", "x_api_key", "AUTHORIZATION", "Proxy_Authorization", "x_goog_api_key", "Api_Key", "COOKIE"})
    CHECK(is_credential_header(name));
  for (auto name : {"x-api-keys", "xapikey", "x-api_key2", "authorizations"}) CHECK_FALSE(is_credential_header(name));
  CHECK(is_hop_by_hop_header("Transfer_Encoding"));
  CHECK(is_cors_header("Access-Control-Allow-Origin"));
  CHECK(is_cors_header("access-control-expose-headers"));
  CHECK_FALSE(is_cors_header("access-controls"));
}

TEST_CASE("proxy::build_upstream_head drops underscore look-alikes: one key, the vault's") {
  std::string request =
      "POST /openai/v1/chat/completions?key%00=client-q&%20key=client-q2&alt=1 HTTP/1.1\r\n"
      "X_Api_Key: client\r\n"
      "Authorization_: x\r\n"
      "authorization: Bearer client\r\n"
      "AUTHORIZATION: Bearer client\r\n"
      "Host_: evil.example\r\n"
      "X_Tokfence_Caller: liar\r\n"
      "Content_Length: 99\r\n\r\n";
  std::string text = upstream_head_of(request, "openai", "https://api.openai.com", 2);
  CHECK(text.starts_with("POST /v1/chat/completions?alt=1 HTTP/1.1\r\n"));
  CHECK(text.find("client") == std::string::npos);
  CHECK(text.find("liar") == std::string::npos);
  CHECK(text.find("Content_Length") == std::string::npos);
  auto out = parsed_request(text);
  CHECK(count_fields(out, "authorization") == 1);
  CHECK(field(out, "authorization") == "Bearer vault-key");
  CHECK(count_fields(out, "x_api_key") == 0);
}

TEST_CASE("proxy::build_upstream_head sends forced headers in place of the client's") {
  auto spec = spec_of("openai");
  spec.forced_headers = {{"OpenAI-Organization", "org-owner"}, {"OpenAI-Project", "proj-owner"}};
  auto in = parsed_request(
      "POST /openai/v1/chat/completions HTTP/1.1\r\nOpenAI-Organization: org-other\r\nopenai_project: proj-other\r\n\r\n");
  auto url = parse_upstream_url("https://api.openai.com");
  REQUIRE(url);
  WipingString head;
  build_upstream_head(in, *split_target(in.target), std::nullopt, spec, *url, SecretString("vault-key"), head);
  auto out = parsed_request(std::string(head.data(), head.size()));
  CHECK(count_fields(out, "openai-organization") == 1);
  CHECK(field(out, "openai-organization") == "org-owner");
  CHECK(field(out, "openai-project") == "proj-owner");
  CHECK(std::string(head.data(), head.size()).find("other") == std::string::npos);
}

TEST_CASE("proxy::append_client_response_headers strips every Access-Control-* field") {
  std::string text =
      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nAccess-Control-Allow-Origin: *\r\n"
      "access-control-allow-credentials: true\r\nAccess-Control-Expose-Headers: *\r\nContent-Length: 2\r\n\r\n";
  http1::ResponseHead in;
  REQUIRE(http1::parse_response_head(text, "POST", in) == http1::Parse::complete);
  std::string out;
  append_client_response_headers(in, out);
  CHECK(out.find("ccess-") == std::string::npos);
  CHECK(out.find("Content-Type: application/json") != std::string::npos);
}

TEST_CASE("proxy::method_allowed forwards the API methods only, or the provider's list") {
  auto spec = spec_of("openai");
  for (auto m : {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}) CHECK(method_allowed(m, spec));
  for (auto m : {"TRACE", "TRACK", "CONNECT", "OPTIONS", "get", "PROPFIND", "DEBUG"}) CHECK_FALSE(method_allowed(m, spec));
  spec.methods = {"POST"};
  CHECK(method_allowed("POST", spec));
  CHECK_FALSE(method_allowed("GET", spec));
}

TEST_CASE("proxy::forward_path_problem refuses dot segments, empty segments and encoded separators") {
  for (auto ok : {"", "/", "/v1/chat/completions", "/v1/models/", "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                  "/v1/files/file-abc_1.txt", "/v1/a%20b", "/v1/...", "/v1/.well-known", "/v1/a.b", "/v1/x;y=1"})
    CHECK(forward_path_problem(ok).empty());
  for (auto bad : {"/..", "/../admin", "/v1/../../admin", "/./v1", "/v1/.", "/%2e%2e/admin", "/%2E%2E/admin", "/.%2e/admin",
                   "/%2e./admin", "/%2e/x", "//admin", "/v1//x", "/..;/admin", "/.;x/admin", "/v1/..%2fadmin",
                   "/v1/%2F", "/v1/%5c..", "/v1\\..\\admin", "/v1/%00", "/v1/%", "/v1/%2", "/v1/%zz", "/v1/%252e%252e",
                   "/v1/a b", "/v1/\xff"})
    CHECK_FALSE(forward_path_problem(bad).empty());
}

TEST_CASE("routing: percent_decoded and json_unescaped give the bytes a provider reads (ImmuneFence's scan)") {
  CHECK(percent_decoded("/v1/x?note=%41%6b%2F%zz%4") == "/v1/x?note=Ak/%zz%4");
  CHECK(json_unescaped(R"({"c":"\u0041B\u0063 \/ \u00e9 \\u0041 \n"})") == R"({"c":"ABc / \u00e9 \\u0041 \n"})");
  CHECK(json_unescaped("\\") == "\\");
  CHECK(json_unescaped("\\u00") == "\\u00");
}

TEST_CASE("proxy::content_coding reads every Content-Encoding field, lists and spellings") {
  auto coding = [](const std::string& fields) {
    return content_coding(parsed_request("POST /openai/v1/chat/completions HTTP/1.1\r\n" + fields + "\r\n"));
  };
  CHECK(coding("").fields == 0);
  CHECK_FALSE(coding("").encoded);
  CHECK_FALSE(coding("Content-Encoding: identity\r\n").encoded);
  CHECK_FALSE(coding("Content-Encoding: IDENTITY\r\n").encoded);
  CHECK(coding("Content-Encoding: gzip\r\n").encoded);
  CHECK(coding("Content-Encoding: identity, gzip\r\n").encoded);  // a list: the upstream inflates
  // A second field behind a first "identity" (review 12b F1): counted, and its gzip read.
  const ContentCoding two = coding("Content-Encoding: identity\r\nContent-Encoding: gzip\r\n");
  CHECK(two.fields == 2);
  CHECK(two.encoded);
  CHECK(coding("Content-Encoding: identity\r\nContent-Encoding: identity\r\n").fields == 2);
  CHECK(coding("Content_Encoding: gzip\r\n").encoded);  // as a CGI-style upstream reads the name
}

TEST_CASE("proxy::declares_json_body: no Content-Type, or a JSON media type in any field") {
  auto json = [](const std::string& fields) {
    return declares_json_body(parsed_request("POST /openai/v1/embeddings HTTP/1.1\r\n" + fields + "\r\n"));
  };
  CHECK(json(""));
  CHECK(json("Content-Type: application/json\r\n"));
  CHECK(json("content-type: Application/JSON; charset=utf-8\r\n"));
  CHECK(json("Content-Type: application/merge-patch+json\r\n"));
  CHECK(json("Content-Type: text/plain\r\nContent-Type: application/json\r\n"));
  CHECK_FALSE(json("Content-Type: multipart/form-data; boundary=x\r\n"));
  CHECK_FALSE(json("Content-Type: application/octet-stream\r\n"));
  CHECK_FALSE(json("Content-Type: text/json-ish\r\n"));
}

TEST_CASE("proxy::json_charset_problem: UTF-8 or US-ASCII only, in any field, quoted or not") {
  auto problem = [](const std::string& fields) {
    return json_charset_problem(parsed_request("POST /openai/v1/chat/completions HTTP/1.1\r\n" + fields + "\r\n"));
  };
  CHECK(problem("").empty());
  CHECK(problem("Content-Type: application/json\r\n").empty());
  CHECK(problem("Content-Type: application/json; charset=utf-8\r\n").empty());
  CHECK(problem("Content-Type: application/json;charset=\"UTF-8\"\r\n").empty());
  CHECK(problem("Content-Type: application/json; charset=us-ascii\r\n").empty());
  // Review 13a M3: express decodes any utf-*, so UTF-7 hid a decoy and "stream" from the scans.
  CHECK(problem("Content-Type: application/json; charset=utf-7\r\n").find("utf-7") != std::string::npos);
  CHECK_FALSE(problem("Content-Type: application/json; CHARSET=\"utf-16\"\r\n").empty());
  CHECK_FALSE(problem("Content-Type: application/json; x=1; charset=latin1\r\n").empty());
  CHECK_FALSE(problem("Content-Type: application/json\r\ncontent_type: application/json; charset=utf-7\r\n").empty());
}

TEST_CASE("proxy::path_escapes_normalized decodes unreserved characters and ':' in the path only") {
  CHECK_FALSE(path_escapes_normalized("/openai/v1/chat/completions").has_value());
  CHECK_FALSE(path_escapes_normalized("/openai/v1/files/a%2Fb").has_value());  // separators stay (refused later)
  CHECK_FALSE(path_escapes_normalized("/openai/v1/x?q=%63").has_value());     // the query is not the path
  CHECK_FALSE(path_escapes_normalized("/openai/v1/x%2").has_value());
  CHECK_FALSE(path_escapes_normalized("http://h/%63").has_value());
  // Review 13a M2: metered as the upstream routes it.
  CHECK(path_escapes_normalized("/openai/v1/%63hat/completions") == "/openai/v1/chat/completions");
  CHECK(path_escapes_normalized("/openai/v1/%63hat/completions?x=%63") == "/openai/v1/chat/completions?x=%63");
  CHECK(path_escapes_normalized("/gemini/v1beta/models/m%3AstreamGenerateContent?alt=sse") ==
        "/gemini/v1beta/models/m:streamGenerateContent?alt=sse");
  CHECK(path_escapes_normalized("/openai/v1/models/ft%3Agpt-4o%2D%5F%2e%7E") == "/openai/v1/models/ft:gpt-4o-_.~");
  CHECK(path_escapes_normalized("/openai/v1/%2e%2e/x") == "/openai/v1/../x");  // then refused as '..'
  CHECK(path_escapes_normalized("/openai/v1/%252e/%61") == "/openai/v1/%252e/a");
  // An escape made by decoding one (review 13d M1): decoded again, until nothing changes.
  CHECK(path_escapes_normalized("/openai/v1/%%36%33hat/completions") == "/openai/v1/chat/completions");
  CHECK(path_escapes_normalized("/openai/v1/%%%33%36%33hat/x") == "/openai/v1/chat/x");
}

TEST_CASE("proxy::json_body_problem refuses byte-order marks and NUL bytes, nothing else") {
  using namespace std::string_view_literals;
  CHECK(json_body_problem(R"({"model":"m"})").empty());
  CHECK(json_body_problem("").empty());
  CHECK(json_body_problem(" \n{\"a\":\"\xc3\xa9\"}").empty());  // UTF-8 text is fine
  CHECK(json_body_problem("\xEF\xBB\xBF{}"sv).find("byte-order mark") != std::string_view::npos);
  CHECK(json_body_problem("\xFE\xFF\0{"sv).find("byte-order mark") != std::string_view::npos);
  CHECK(json_body_problem("\xFF\xFE{\0"sv).find("byte-order mark") != std::string_view::npos);
  CHECK(json_body_problem("\0\0\xFE\xFF\0\0\0{"sv).find("byte-order mark") != std::string_view::npos);
  CHECK(json_body_problem("{\0\"\0"sv).find("NUL") != std::string_view::npos);   // UTF-16LE, no mark
  CHECK(json_body_problem("\0{\0\""sv).find("NUL") != std::string_view::npos);   // UTF-16BE
  CHECK(json_body_problem("{\"a\":1}\0"sv).find("NUL") != std::string_view::npos);
}
