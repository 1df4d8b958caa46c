#include "core/page_origin.hpp"

namespace tokfence {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// A client's bytes in a log line: at most 100 of them, anything unprintable as '?'.
std::string quoted(std::string_view value) {
  std::string out = "'";
  for (std::size_t i = 0; i < value.size() && i < 100; ++i) {
    const auto c = static_cast<unsigned char>(value[i]);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return out + (value.size() > 100 ? "...'" : "'");
}

// Calls `each(name, line)` for every field line of an HTTP/1 head (start line skipped, stops at the
// empty line or the end).
template <class Each>
void for_each_field(std::string_view head, Each&& each) {
  std::size_t at = head.find("\r\n");
  at = at == std::string_view::npos ? head.size() : at + 2;
  while (at < head.size()) {
    const auto end = head.find("\r\n", at);
    const std::string_view line = head.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    if (line.empty()) return;
    each(line.substr(0, line.find(':')), line);
    if (end == std::string_view::npos) return;
    at = end + 2;
  }
}

bool contains_ci(std::string_view text, std::string_view needle) {
  for (std::size_t i = 0; i + needle.size() <= text.size(); ++i)
    if (iequals(text.substr(i, needle.size()), needle)) return true;
  return false;
}

// Answer fields that make the browser send something to an address of the server's choosing,
// outside the policy's reach: reports (a policy's report-uri/report-to, Report-To, Reporting-
// Endpoints, NEL, a report-only policy), Link (preconnect is under no policy) and Refresh (a
// navigation). A server policy without reporting stays: the browser enforces it beside ours.
bool sends_elsewhere(std::string_view name, std::string_view line) {
  for (std::string_view dropped : {"content-security-policy-report-only", "report-to", "reporting-endpoints", "nel",
                                   "link", "refresh"})
    if (iequals(name, dropped)) return true;
  return iequals(name, "content-security-policy") && (contains_ci(line, "report-uri") || contains_ci(line, "report-to"));
}

}  // namespace

std::string relayed_page_policy(std::uint16_t port) {
  const std::string p = std::to_string(port);
  return "default-src 'self' data: blob: 'unsafe-inline' 'unsafe-eval' 'wasm-unsafe-eval'; "
         "connect-src 'self' data: blob: ws://127.0.0.1:" + p + " ws://localhost:" + p +
         "; form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'";
}

bool requests_service_worker(std::string_view head) {
  bool found = false;
  for_each_field(head, [&](std::string_view name, std::string_view) { found = found || iequals(name, "service-worker"); });
  return found;
}

bool is_interim_answer(std::string_view head) {
  // "HTTP/1.1 1xx": the status code's first digit at 9.
  return head.size() >= 12 && head.substr(0, 7) == "HTTP/1." && head[9] == '1' && head.substr(9, 3) != "101";
}

std::string answer_head_with_policy(std::string_view head, std::string_view policy) {
  if (head.substr(0, 7) != "HTTP/1.") return {};
  const auto status_end = head.find("\r\n");
  if (status_end == std::string_view::npos) return {};
  std::string out(head.substr(0, status_end + 2));
  for_each_field(head, [&](std::string_view name, std::string_view line) {
    if (iequals(name, "connection") || iequals(name, "keep-alive") || iequals(name, "x-dns-prefetch-control")) return;
    if (sends_elsewhere(name, line)) return;
    out.append(line).append("\r\n");
  });
  out.append("Content-Security-Policy: ").append(policy).append("\r\nX-DNS-Prefetch-Control: off\r\nConnection: close\r\n\r\n");
  return out;
}

bool is_own_loopback_origin(std::string_view origin, std::string_view host) {
  const auto colon = host.rfind(':');
  if (colon == std::string_view::npos) return false;
  const std::string_view name = host.substr(0, colon);
  if (!iequals(name, "127.0.0.1") && !iequals(name, "localhost")) return false;
  return origin.size() == 7 + host.size() && iequals(origin.substr(0, 7), "http://") && iequals(origin.substr(7), host);
}

std::string foreign_page_refusal(std::span<const std::string_view> origins,
                                 std::span<const std::string_view> fetch_sites, std::string_view host) {
  if (origins.size() > 1) return std::to_string(origins.size()) + " Origin fields";
  if (fetch_sites.size() > 1) return std::to_string(fetch_sites.size()) + " Sec-Fetch-Site fields";
  if (origins.size() == 1 && !is_own_loopback_origin(origins[0], host))
    return "sent by a web page of another origin (Origin " + quoted(origins[0]) + ")";
  // Checked even with the own Origin: a browser never pairs them, so the pair is not a browser's.
  if (fetch_sites.size() == 1 && !iequals(fetch_sites[0], "same-origin") && !iequals(fetch_sites[0], "none"))
    return "sent by a web page of another origin (Sec-Fetch-Site " + quoted(fetch_sites[0]) + ")";
  return "";
}

}  // namespace tokfence
