#include "core/names.hpp"

#include <arpa/inet.h>

#include <string>
#include <vector>

namespace tokfence {

namespace {
bool lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
}  // namespace

bool is_valid_provider_name(std::string_view name) {
  if (name.empty() || name.size() > 32 || !lower_alnum(name[0])) return false;
  for (char c : name.substr(1))
    if (!lower_alnum(c) && c != '_' && c != '-') return false;
  return true;
}

Result<void> check_provider_name(std::string_view name) {
  if (is_valid_provider_name(name)) return {};
  // Echo at most 40 printable characters: the "name" might be a pasted key.
  std::string shown;
  for (char c : name.substr(0, 40)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (name.size() > 40) shown += "...";
  return fail("provider name '" + shown + "': must match [a-z0-9][a-z0-9_-]{0,31}");
}

namespace {

constexpr std::size_t kMaxHostLength = 253;
constexpr std::size_t kMaxLabelLength = 63;
constexpr const char* kHostRule =
    "a host is a lower-case DNS name with at least one dot (labels of a-z, 0-9 and '-'), like api.example.com; "
    "no wildcard, port, IP address or trailing dot";

// The host as quoted in an error: printable ASCII, at most 80 characters.
std::string shown_host(std::string_view host) {
  std::string shown;
  for (char c : host.substr(0, 80)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (host.size() > 80) shown += "...";
  return shown;
}

std::unexpected<Error> bad_host(std::string_view host, const std::string& problem, const std::string& fix = kHostRule) {
  return fail("host '" + shown_host(host) + "': " + problem + ": " + fix);
}

}  // namespace

Result<void> check_secret_host(std::string_view host) {
  if (host.empty()) return bad_host(host, "is empty");
  bool upper = false;
  for (char c : host) upper = upper || (c >= 'A' && c <= 'Z');
  if (upper) {
    std::string lower;
    for (char c : host) lower += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    return bad_host(host, "has upper-case letters", "write it lower-case: '" + shown_host(lower) + "'");
  }
  if (host.find("://") != std::string_view::npos || host.find('/') != std::string_view::npos)
    return bad_host(host, "is a URL or has a path", "give the host name alone, like api.example.com");
  if (host.find('[') != std::string_view::npos || host.find(':') != host.rfind(':'))
    return bad_host(host, "is an IP address", kHostRule);
  if (auto colon = host.find(':'); colon != std::string_view::npos)
    return bad_host(host, "has a port", "give the name alone: '" + shown_host(host.substr(0, colon)) + "'");

  const std::string_view name = host;
  // A secret bound to "*.suffix" would go to any name anyone can get under that suffix
  // (*.github.io, *.amazonaws.com, *.co.uk): bindings name exact hosts.
  if (host.starts_with("*."))
    return bad_host(host, "is a wildcard",
                    "bind the secret to each exact host it is for, e.g. --host " + shown_host(host.substr(2)));
  if (name.find('*') != std::string_view::npos) return bad_host(host, "has a '*'", kHostRule);
  if (host.back() == '.')
    return bad_host(host, "ends with '.'", "drop the trailing dot: '" + shown_host(host.substr(0, host.size() - 1)) + "'");
  if (name.size() > kMaxHostLength) return bad_host(host, "is longer than 253 characters", kHostRule);
  {
    std::string copy(name);
    in_addr addr{};
    if (::inet_aton(copy.c_str(), &addr) != 0) return bad_host(host, "is an IP address", kHostRule);
  }
  if (name.find('.') == std::string_view::npos)
    return bad_host(host, "has no dot", kHostRule);

  std::vector<std::string_view> labels;
  for (std::size_t start = 0;;) {
    std::size_t dot = name.find('.', start);
    labels.push_back(name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  for (std::string_view label : labels) {
    if (label.empty()) return bad_host(host, "has an empty label", kHostRule);
    if (label.size() > kMaxLabelLength)
      return bad_host(host, "has a label longer than 63 characters", kHostRule);
    for (char c : label)
      if (!lower_alnum(c) && c != '-')
        return bad_host(host, "has the character '" + shown_host(std::string_view(&c, 1)) + "'", kHostRule);
    if (label.front() == '-' || label.back() == '-')
      return bad_host(host, "has a label starting or ending with '-'", kHostRule);
  }
  if (!(labels.back().front() >= 'a' && labels.back().front() <= 'z'))
    return bad_host(host, "its last label starts with a digit (no top-level domain does)", kHostRule);
  return {};
}

}  // namespace tokfence
