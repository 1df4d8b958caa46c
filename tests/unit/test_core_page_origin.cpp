#include <catch2/catch.hpp>
#include <string_view>
#include <vector>

#include "core/page_origin.hpp"

using namespace tokfence;
using Fields = std::vector<std::string_view>;

TEST_CASE("page_origin: the own loopback origin, exactly as the request named the listener") {
  CHECK(is_own_loopback_origin("http://127.0.0.1:4242", "127.0.0.1:4242"));
  CHECK(is_own_loopback_origin("http://localhost:4242", "localhost:4242"));
  CHECK(is_own_loopback_origin("HTTP://LocalHost:4242", "localhost:4242"));  // scheme and host have no case
  for (std::string_view other : {"http://127.0.0.1:4243", "http://127.0.0.1", "http://127.0.0.1:4242/",
                                 "https://127.0.0.1:4242", "http://evil.test:4242", "http://127.0.0.1:42420",
                                 "http://localhost.:4242", "null", "", "http://127.0.0.1:4242 "})
    CHECK_FALSE(is_own_loopback_origin(other, "127.0.0.1:4242"));
  // Review 14a F1: localhost and 127.0.0.1 are two origins. A page of http://localhost:<port> may
  // be another user's listener on [::1]:<port>; it does not speak for a request to 127.0.0.1.
  CHECK_FALSE(is_own_loopback_origin("http://localhost:4242", "127.0.0.1:4242"));
  CHECK_FALSE(is_own_loopback_origin("http://127.0.0.1:4242", "localhost:4242"));
  // Only the loopback names count as a listener's own, whatever Host a caller passes.
  CHECK_FALSE(is_own_loopback_origin("http://evil.test:4242", "evil.test:4242"));
  CHECK_FALSE(is_own_loopback_origin("http://evil.test", "evil.test"));
}

TEST_CASE("page_origin: what the user sends is admitted") {
  const std::string_view host = "127.0.0.1:4242";
  CHECK(foreign_page_refusal(Fields{}, Fields{}, host).empty());                  // curl
  CHECK(foreign_page_refusal(Fields{}, Fields{"none"}, host).empty());            // a typed URL
  CHECK(foreign_page_refusal(Fields{"http://127.0.0.1:4242"}, Fields{}, host).empty());
  CHECK(foreign_page_refusal(Fields{"http://localhost:4242"}, Fields{"same-origin"}, "localhost:4242").empty());
  CHECK(foreign_page_refusal(Fields{}, Fields{"same-origin"}, host).empty());     // a same-origin GET
}

TEST_CASE("page_origin: a page of another origin is refused") {
  const std::string_view host = "127.0.0.1:4242";
  // The cross-site WebSocket of review 13a R1: Origin only (no Sec-Fetch-Site on a handshake).
  CHECK(foreign_page_refusal(Fields{"http://evil.test:8000"}, Fields{}, host).find("Origin 'http://evil.test:8000'") !=
        std::string::npos);
  // Review 14a F1: the squatter's page at localhost opening ws://127.0.0.1:<port>/.
  CHECK_FALSE(foreign_page_refusal(Fields{"http://localhost:4242"}, Fields{}, host).empty());
  // Another port of 127.0.0.1 is the same site, not the same origin (tokfence's own dashboard).
  CHECK_FALSE(foreign_page_refusal(Fields{"http://127.0.0.1:8000"}, Fields{"same-site"}, host).empty());
  CHECK_FALSE(foreign_page_refusal(Fields{"null"}, Fields{}, host).empty());  // a sandboxed frame, a data: URL
  // A cross-site GET without Origin (<img>, a navigation) still says so in Sec-Fetch-Site.
  CHECK_FALSE(foreign_page_refusal(Fields{}, Fields{"cross-site"}, host).empty());
  CHECK_FALSE(foreign_page_refusal(Fields{}, Fields{"same-site"}, host).empty());
  CHECK_FALSE(foreign_page_refusal(Fields{}, Fields{"something-new"}, host).empty());
  // The own Origin does not cover a cross-site fetch mark: no browser sends that pair.
  CHECK_FALSE(foreign_page_refusal(Fields{"http://127.0.0.1:4242"}, Fields{"cross-site"}, host).empty());
}

TEST_CASE("page_origin: a field given twice is refused") {
  const std::string_view host = "127.0.0.1:4242";
  CHECK(foreign_page_refusal(Fields{"http://127.0.0.1:4242", "http://127.0.0.1:4242"}, Fields{}, host) ==
        "2 Origin fields");
  CHECK(foreign_page_refusal(Fields{}, Fields{"none", "none"}, host) == "2 Sec-Fetch-Site fields");
}

TEST_CASE("page_origin: a client's bytes are quoted, bounded and printable") {
  const std::string long_origin = "http://evil.test/" + std::string(300, 'a') + "\x1b[2J";
  const std::string why = foreign_page_refusal(Fields{long_origin}, Fields{}, "127.0.0.1:4242");
  CHECK(why.size() < 200);
  CHECK(why.find('\x1b') == std::string::npos);
}

TEST_CASE("page_origin: a relayed page's answers carry the policy and close the connection") {
  const std::string policy = relayed_page_policy(18789);
  CHECK(policy.find("default-src 'self' data: blob:") == 0);
  CHECK(policy.find("connect-src 'self' data: blob: ws://127.0.0.1:18789 ws://localhost:18789;") != std::string::npos);
  CHECK(policy.find("frame-ancestors 'none'") != std::string::npos);
  // No source of another host anywhere in it.
  CHECK(policy.find("http") == std::string::npos);
  CHECK(policy.find('*') == std::string::npos);

  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
      "Content-Security-Policy: default-src *\r\nx-dns-prefetch-control: on\r\nContent-Length: 5\r\n\r\n";
  CHECK(answer_head_with_policy(head, "P") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Security-Policy: default-src *\r\nContent-Length: 5\r\n"
        "Content-Security-Policy: P\r\nX-DNS-Prefetch-Control: off\r\nConnection: close\r\n\r\n");
  CHECK(answer_head_with_policy("HTTP/1.0 404 Not Found\r\n\r\n", "P") ==
        "HTTP/1.0 404 Not Found\r\nContent-Security-Policy: P\r\nX-DNS-Prefetch-Control: off\r\nConnection: close\r\n\r\n");
  // Not an HTTP/1 answer: nothing to send on.
  CHECK(answer_head_with_policy("<html>hello</html>\r\n\r\n", "P").empty());
  CHECK(answer_head_with_policy("HTTP/2 200\r\n\r\n", "P").empty());

  // What would make the browser send something elsewhere, outside any policy's reach, is dropped;
  // a server policy without reporting stays.
  const std::string reporting =
      "HTTP/1.1 200 OK\r\nContent-Security-Policy: media-src 'none'; report-uri http://evil.test/r\r\n"
      "content-security-policy: img-src 'self'; REPORT-TO grp\r\nContent-Security-Policy-Report-Only: default-src 'none'\r\n"
      "Report-To: {\"group\":\"grp\"}\r\nReporting-Endpoints: grp=\"https://evil.test/r\"\r\nNEL: {\"report_to\":\"grp\"}\r\n"
      "Link: <https://evil.test>; rel=preconnect\r\nRefresh: 0; url=https://evil.test/\r\n"
      "Content-Security-Policy: script-src 'self'\r\nLinked: kept\r\n\r\n";
  CHECK(answer_head_with_policy(reporting, "P") ==
        "HTTP/1.1 200 OK\r\nContent-Security-Policy: script-src 'self'\r\nLinked: kept\r\n"
        "Content-Security-Policy: P\r\nX-DNS-Prefetch-Control: off\r\nConnection: close\r\n\r\n");

  CHECK(is_interim_answer("HTTP/1.1 100 Continue\r\n\r\n"));
  CHECK(is_interim_answer("HTTP/1.1 103 Early Hints\r\nLink: <https://x.test/a.js>; rel=preload\r\n\r\n"));
  CHECK_FALSE(is_interim_answer("HTTP/1.1 101 Switching Protocols\r\n\r\n"));
  CHECK_FALSE(is_interim_answer("HTTP/1.1 200 OK\r\n\r\n"));
  CHECK_FALSE(is_interim_answer("HTTP/1"));

  CHECK(requests_service_worker("GET /sw.js HTTP/1.1\r\nHost: h\r\nService-Worker: script\r\n\r\n"));
  CHECK(requests_service_worker("GET /sw.js HTTP/1.1\r\nservice-worker:script\r\n"));
  CHECK_FALSE(requests_service_worker("GET /sw.js HTTP/1.1\r\nHost: h\r\nService-Worker-Allowed: /\r\n\r\n"));
  CHECK_FALSE(requests_service_worker("GET /Service-Worker: HTTP/1.1\r\nHost: h\r\n\r\n"));
}
