#include "core/page_origin.hpp"

#include "core/ascii.hpp"

namespace tokfence {
namespace {

using ascii::iequals;

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

}  // namespace

bool requests_service_worker(std::string_view head) {
  bool found = false;
  for_each_field(head, [&](std::string_view name, std::string_view) { found = found || iequals(name, "service-worker"); });
  return found;
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
