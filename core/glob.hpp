#pragma once
// One '*' glob for every allow-list that takes patterns: egress path rules (proxy/egress/policy)
// and capability scopes (proxy/immune/sessions: models, endpoints). Two copies used to exist; a
// fix to one (say, case handling) would silently not reach the other.
#include <string_view>

namespace tokfence {

// '*' matches any run of characters ('/' included); everything else matches literally, case
// included. Iterative with one backtrack point: linear in practice, never exponential, so a
// pattern from a token or a config file cannot make matching hang.
constexpr bool glob_match(std::string_view glob, std::string_view text) {
  std::size_t g = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (g < glob.size() && glob[g] == '*') {
      star = g++;
      mark = t;
    } else if (g < glob.size() && glob[g] == text[t]) {
      ++g;
      ++t;
    } else if (star != std::string_view::npos) {
      g = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*') ++g;
  return g == glob.size();
}

}  // namespace tokfence
