#include "core/page_policy.hpp"

#include <array>

#include "core/ascii.hpp"

namespace tokfence {
namespace {

// RFC 9110 tchar.
bool is_token_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~"))
    if (c == static_cast<unsigned char>(t)) return true;
  return false;
}

// Field value bytes: tab, space, visible ASCII and obs-text; no CR, LF, NUL or other control.
bool is_value_char(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// The answer fields that go to the browser (lower case). Everything else is dropped: Link
// (preconnect is under no policy), Refresh (a navigation), Report-To, Reporting-Endpoints, NEL,
// report-only policies (reports go anywhere), and whatever a browser may learn to act on later.
// Set-Cookie neither: browsers keep cookies per host, not per port, so the container could set
// cookies the web dashboard and other launches' UIs get (review 14c R1).
constexpr std::array<std::string_view, 26> kKeptFields = {
    "content-type",   "content-length",  "transfer-encoding", "content-encoding", "content-language",
    "content-range",  "content-disposition", "accept-ranges", "cache-control",    "expires",
    "pragma",         "etag",            "last-modified",     "date",             "age",
    "vary",           "location",        "www-authenticate",  "retry-after",
    "allow",          "x-content-type-options", "x-frame-options", "referrer-policy",
    "cross-origin-opener-policy", "cross-origin-resource-policy", "content-security-policy"};

bool kept(const std::string& name) {
  for (auto k : kKeptFields)
    if (name == k) return true;
  return false;
}

AnswerRewrite refuse(std::string why) { return {AnswerRewrite::refused, {}, std::move(why)}; }

}  // namespace

std::string relayed_page_policy(std::uint16_t port) {
  const std::string p = std::to_string(port);
  return "default-src 'self' data: blob: 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval'; "
         "connect-src 'self' data: blob: ws://127.0.0.1:" + p + " ws://localhost:" + p +
         "; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'";
}

std::size_t answer_head_length(std::string_view bytes) {
  for (std::size_t at = bytes.find('\n'); at != std::string_view::npos; at = bytes.find('\n', at + 1)) {
    if (at + 1 < bytes.size() && bytes[at + 1] == '\n') return at + 2;
    if (at + 2 < bytes.size() && bytes[at + 1] == '\r' && bytes[at + 2] == '\n') return at + 3;
  }
  return std::string_view::npos;
}

AnswerRewrite rewrite_answer_head(std::string_view head, std::string_view policy) {
  // Line ends: CRLF, and nothing else of CR or LF anywhere (a browser also ends lines at a bare LF).
  for (std::size_t i = 0; i < head.size(); ++i) {
    const bool cr = head[i] == '\r', lf = head[i] == '\n';
    if ((cr && (i + 1 >= head.size() || head[i + 1] != '\n')) || (lf && (i == 0 || head[i - 1] != '\r')))
      return refuse("a bare CR or LF in the answer head");
  }
  if (!head.ends_with("\r\n\r\n")) return refuse("the answer head does not end with an empty line");
  const std::string_view status = head.substr(0, head.find("\r\n"));
  // HTTP/1.x SP 3DIGIT [SP reason]
  if (status.size() < 12 || !(status.starts_with("HTTP/1.1 ") || status.starts_with("HTTP/1.0 ")) ||
      status[9] < '1' || status[9] > '5' || status[10] < '0' || status[10] > '9' || status[11] < '0' ||
      status[11] > '9' || (status.size() > 12 && status[12] != ' '))
    return refuse("not a strict HTTP/1 status line");
  for (unsigned char c : status.substr(12))
    if (!is_value_char(c)) return refuse("a control byte in the status line");
  const std::string_view code = status.substr(9, 3);
  if (code == "100" || code == "103") return {AnswerRewrite::interim, {}, {}};
  if (code[0] == '1') return refuse("an interim answer other than 100 and 103 (" + std::string(code) + ")");

  std::string out(status);
  out += "\r\n";
  int lengths = 0;
  bool chunked = false;
  std::size_t at = status.size() + 2;
  while (at + 2 <= head.size()) {
    const std::size_t end = head.find("\r\n", at);
    const std::string_view line = head.substr(at, end - at);
    at = end + 2;
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return refuse("a field line without a name");
    for (unsigned char c : line.substr(0, colon))
      if (!is_token_char(c)) return refuse("a field name that is not a token (white space before ':', a folded line)");
    std::string_view value = line.substr(colon + 1);
    for (unsigned char c : value)
      if (!is_value_char(c)) return refuse("a control byte in a field value");
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    const std::string name = ascii::lower(line.substr(0, colon));
    if (name == "content-length") {
      if (++lengths > 1 || value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos)
        return refuse("Content-Length given twice or not a number");
    } else if (name == "transfer-encoding") {
      if (ascii::lower(value) != "chunked" || chunked) return refuse("a Transfer-Encoding other than one chunked");
      chunked = true;
    } else if (name == "content-security-policy" && (ascii::contains(value, "report-uri") || ascii::contains(value, "report-to"))) {
      continue;  // its reports would go to an address of the page's choosing
    }
    if (!kept(name)) continue;
    out.append(line.substr(0, colon)).append(": ").append(value).append("\r\n");
  }
  if (lengths > 0 && chunked) return refuse("both Content-Length and Transfer-Encoding");
  out.append("Content-Security-Policy: ").append(policy).append("\r\nX-DNS-Prefetch-Control: off\r\nConnection: close\r\n\r\n");
  return {AnswerRewrite::final_head, std::move(out), {}};
}

std::string service_worker_answer(std::string_view policy) {
  // Takes over at once (a worker another program registered is replaced by this one at the
  // browser's next update check) and unregisters, so nothing stays between the page and the relay.
  static constexpr std::string_view kWorker =
      "self.addEventListener('install', () => self.skipWaiting());\n"
      "self.addEventListener('activate', (e) => e.waitUntil(self.registration.unregister()));\n";
  return "HTTP/1.1 200 OK\r\nContent-Type: text/javascript\r\nCache-Control: no-store\r\nContent-Length: " +
         std::to_string(kWorker.size()) + "\r\nContent-Security-Policy: " + std::string(policy) +
         "\r\nConnection: close\r\n\r\n" + std::string(kWorker);
}

}  // namespace tokfence
