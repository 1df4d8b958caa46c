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

}  // namespace

bool is_own_loopback_origin(std::string_view origin, std::uint16_t port) {
  const std::string p = ":" + std::to_string(port);
  return iequals(origin, "http://127.0.0.1" + p) || iequals(origin, "http://localhost" + p);
}

std::string foreign_page_refusal(std::span<const std::string_view> origins,
                                 std::span<const std::string_view> fetch_sites, std::uint16_t port) {
  if (origins.size() > 1) return std::to_string(origins.size()) + " Origin fields";
  if (fetch_sites.size() > 1) return std::to_string(fetch_sites.size()) + " Sec-Fetch-Site fields";
  if (origins.size() == 1 && !is_own_loopback_origin(origins[0], port))
    return "sent by a web page of another origin (Origin " + quoted(origins[0]) + ")";
  // Checked even with the own Origin: a browser never pairs them, so the pair is not a browser's.
  if (fetch_sites.size() == 1 && !iequals(fetch_sites[0], "same-origin") && !iequals(fetch_sites[0], "none"))
    return "sent by a web page of another origin (Sec-Fetch-Site " + quoted(fetch_sites[0]) + ")";
  return "";
}

}  // namespace tokfence
