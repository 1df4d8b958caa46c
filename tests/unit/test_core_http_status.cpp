#include <catch2/catch.hpp>

#include "core/http_status.hpp"

using tokfence::reason_phrase;

TEST_CASE("core::reason_phrase names the codes tokfence sends and nothing else") {
  CHECK(reason_phrase(404) == "Not Found");
  CHECK(reason_phrase(200) == "OK");
  CHECK(reason_phrase(303) == "See Other");  // the dashboard's login redirect
  CHECK(reason_phrase(421) == "Misdirected Request");
  CHECK(reason_phrase(413) == "Content Too Large");
  CHECK(reason_phrase(502) == "Bad Gateway");
  CHECK(reason_phrase(429) == "Too Many Requests");
  CHECK(reason_phrase(299) == "");
  CHECK(reason_phrase(0) == "");
  CHECK(reason_phrase(-1) == "");
  CHECK(reason_phrase(1000) == "");
}
