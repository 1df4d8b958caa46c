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

TEST_CASE("page_origin: a service worker script fetch") {
  CHECK(requests_service_worker("GET /sw.js HTTP/1.1\r\nHost: h\r\nService-Worker: script\r\n\r\n"));
  CHECK(requests_service_worker("GET /sw.js HTTP/1.1\r\nservice-worker:script\r\n"));
  CHECK_FALSE(requests_service_worker("GET /sw.js HTTP/1.1\r\nHost: h\r\nService-Worker-Allowed: /\r\n\r\n"));
  CHECK_FALSE(requests_service_worker("GET /Service-Worker: HTTP/1.1\r\nHost: h\r\n\r\n"));
}
