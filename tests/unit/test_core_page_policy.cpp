#include <catch2/catch.hpp>
#include <string>

#include "core/page_policy.hpp"

using namespace tokfence;

namespace {

// The head the relay sends for `head`, or "refused: why" / "interim".
std::string rewritten(const std::string& head) {
  auto r = rewrite_answer_head(head, "P");
  if (r.kind == AnswerRewrite::interim) return "interim";
  if (r.kind == AnswerRewrite::refused) return "refused: " + r.why;
  return r.head;
}

const std::string kTail = "Content-Security-Policy: P\r\nX-DNS-Prefetch-Control: off\r\nConnection: close\r\n\r\n";

}  // namespace

TEST_CASE("page_policy: the relayed page's policy keeps its loads on the listener's origin") {
  const std::string policy = relayed_page_policy(18789);
  CHECK(policy.find("default-src 'self' data: blob:") == 0);
  CHECK(policy.find("connect-src 'self' data: blob: ws://127.0.0.1:18789 ws://localhost:18789;") != std::string::npos);
  CHECK(policy.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(policy.find("http") == std::string::npos);  // no source of another host
  CHECK(policy.find('*') == std::string::npos);
}

TEST_CASE("page_policy: the head ends where a browser ends it") {
  CHECK(answer_head_length("HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody") == 25);
  CHECK(answer_head_length("HTTP/1.1 200 OK\nA: b\n\nbody\r\n\r\n") == 22);  // review 14b R1: bare LF
  CHECK(answer_head_length("HTTP/1.1 200 OK\r\nA: b\r\n\nbody\r\n\r\n") == 24);
  CHECK(answer_head_length("HTTP/1.1 200 OK\r\nA: b\r\n") == std::string::npos);
}

TEST_CASE("page_policy: a final head is rebuilt from allow-listed fields") {
  CHECK(rewritten("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
                  "Content-Security-Policy: script-src 'self'\r\nX-Dns-Prefetch-Control: on\r\nContent-Length:  5 \r\n"
                  "Link: <https://evil.test>; rel=preconnect\r\nRefresh: 0; url=https://evil.test/\r\n"
                  "Report-To: {}\r\nReporting-Endpoints: a=\"https://evil.test\"\r\nNEL: {}\r\n"
                  "Content-Security-Policy-Report-Only: default-src 'none'\r\n"
                  "Content-Security-Policy: img-src 'none'; REPORT-URI https://evil.test\r\n"
                  "Content-Security-Policy: img-src 'none'; report-to g\r\nX-Anything-New: 1\r\n"
                  "Set-Cookie: tokfence_dashboard=planted; Path=/\r\n\r\n") ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Security-Policy: script-src 'self'\r\nContent-Length: 5\r\n" +
            kTail);
  CHECK(rewritten("HTTP/1.0 404 Not Found\r\n\r\n") == "HTTP/1.0 404 Not Found\r\n" + kTail);
  CHECK(rewritten("HTTP/1.1 204\r\n\r\n") == "HTTP/1.1 204\r\n" + kTail);
  CHECK(rewritten("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") ==
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n" + kTail);
  CHECK(rewritten("HTTP/1.1 100 Continue\r\n\r\n") == "interim");
  CHECK(rewritten("HTTP/1.1 103 Early Hints\r\nLink: <https://evil.test/a.js>; rel=preload\r\n\r\n") == "interim");
}

TEST_CASE("page_policy: whatever a browser could read differently is refused") {
  for (const std::string& head : {
           // review 14b R1: line ends and status lines a browser reads differently
           std::string("HTTP/1.1 200 OK\nContent-Type: text/html\n\n"), std::string("HTTP/1.1 200 OK\r\nA: b\r\n\n"),
           std::string("HTTP/1.1 200 OK\r\nA: b\rX: y\r\n\r\n"), std::string("HTTP/1.1  100 Continue\r\n\r\n"),
           std::string("HTTP/1.1 0100\r\n\r\n"), std::string("HTTP/1.1 101 Switching Protocols\r\n\r\n"),
           std::string("HTTP/1.1 102 Processing\r\n\r\n"), std::string("HTTP/1.1 600 Odd\r\n\r\n"),
           std::string("HTTP/1.1 20 OK\r\n\r\n"), std::string("HTTP/1.10 200 OK\r\n\r\n"),
           std::string("HTTP/2 200\r\n\r\n"), std::string("<html>hello</html>\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\x01\r\n\r\n"),
           // review 14b R2: a dropped field smuggled past a line-by-line reading
           std::string("HTTP/1.1 200 OK\r\nContent-Security-Policy: img-src 'none';\r\n report-uri http://evil.test\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nContent-Security-Policy : report-uri http://evil.test\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nContent-Security-Policy\t: report-uri http://evil.test\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nX-A: 1\nContent-Security-Policy: report-uri http://evil.test\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\n: nameless\r\n\r\n"), std::string("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n", 27),
           // framing a browser and we could read apart
           std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
           std::string("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n")}) {
    INFO(head);
    CHECK(rewritten(head).starts_with("refused: "));
  }
}

TEST_CASE("page_policy: a service worker script answered by the relay unregisters itself") {
  const std::string answer = service_worker_answer("P");
  CHECK(answer.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nCache-Control: no-store\r\n"));
  CHECK(answer.find("Content-Security-Policy: P\r\n") != std::string::npos);
  const auto body = answer.substr(answer.find("\r\n\r\n") + 4);
  CHECK(answer.find("Content-Length: " + std::to_string(body.size()) + "\r\n") != std::string::npos);
  CHECK(body.find("self.registration.unregister()") != std::string::npos);
}
