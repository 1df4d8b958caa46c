#include "launcher/text_format.hpp"

#include <algorithm>
#include <ctime>

namespace tokfence::cli {

std::string printable(std::string text) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return text;
}

std::string with_commas(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  int count = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    if (count && count % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    ++count;
  }
  return n < 0 ? "-" + out : out;
}

void Table::add(std::vector<std::string> row) {
  for (auto& cell : row) cell = printable(std::move(cell));
  rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out, bool header) {
  std::vector<std::size_t> width;
  for (auto& [name, min] : columns_) width.push_back(std::max<std::size_t>(name.size(), min));
  for (auto& row : rows_)
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size()) s += std::string(width[i] - std::min(width[i], cells[i].size()) + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    out << s << "\n";
  };
  if (header) {
    std::vector<std::string> names;
    for (auto& c : columns_) names.push_back(c.first);
    line(names);
  }
  for (auto& row : rows_) line(row);
  rows_.clear();
}

std::string pad(std::string s, std::size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

std::string utc_rfc3339(std::int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace tokfence::cli
