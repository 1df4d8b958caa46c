#include "core/text_format.hpp"

#include <locale.h>
#include <wchar.h>

#include "core/money.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string_view>

namespace tokfence {

namespace {

// The length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlong forms,
// no surrogates, nothing above U+10FFFF), or 0 when it is not one.
std::size_t utf8_sequence_length(std::string_view s, char32_t& code_point) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  std::size_t length;
  char32_t min;
  if (b0 < 0x80) {
    code_point = b0;
    return 1;
  } else if ((b0 & 0xE0) == 0xC0) {
    length = 2, code_point = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3, code_point = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4, code_point = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (s.size() < length) return 0;
  for (std::size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xC0) != 0x80) return 0;
    code_point = (code_point << 6) | (byte(i) & 0x3F);
  }
  if (code_point < min || code_point > 0x10FFFF || (code_point >= 0xD800 && code_point <= 0xDFFF)) return 0;
  return length;
}

// C0 controls, DEL and C1 controls (U+0080-U+009F: CSI, OSC and friends to a terminal that
// takes 8-bit controls), and the format characters that make text show other than it is: the
// bidirectional marks, embeddings, overrides and isolates (U+061C, U+200E-F, U+202A-E,
// U+2066-9: a model name with an RLO reversed the rest of its `tokfence log` line, review 15b L4)
// and the invisible ones that hide text between visible characters (U+200B zero-width space,
// U+2060-4, U+FEFF). ZWNJ/ZWJ (U+200C-D) and the variation
// selectors U+FE00-FE0F are not here: a stream of output keeps them for its emoji (mask_into).
// Review 15c P1 added the rest that show nothing or end a line: the soft hyphen, the combining
// grapheme joiner, the Hangul fillers, the Mongolian vowel separator, the line and paragraph
// separators, the interlinear annotation and object replacement characters, the format controls of
// Egyptian hieroglyphs, shorthand and musical notation (review 15d P1), the TAG characters
// (U+E0000-E007F: hidden ASCII) and the supplementary variation selectors.
bool is_control(char32_t c) {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x00AD || c == 0x034F || c == 0x061C || c == 0x115F ||
         c == 0x1160 || c == 0x180E || c == 0x200B || c == 0x200E || c == 0x200F || c == 0x2028 || c == 0x2029 ||
         (c >= 0x202A && c <= 0x202E) || (c >= 0x2060 && c <= 0x2064) || (c >= 0x2066 && c <= 0x2069) ||
         c == 0x3164 || c == 0xFEFF || c == 0xFFA0 || (c >= 0xFFF9 && c <= 0xFFFC) || (c >= 0x13430 && c <= 0x1343F) ||
         (c >= 0x1BCA0 && c <= 0x1BCA3) || (c >= 0x1D173 && c <= 0x1D17A) || (c >= 0xE0000 && c <= 0xE007F) ||
         (c >= 0xE0100 && c <= 0xE01EF);
}

// True when `s` is the start of a multi-byte UTF-8 sequence cut short (the rest is in the next chunk).
bool cut_sequence(std::string_view s) {
  const auto b0 = static_cast<unsigned char>(s[0]);
  const std::size_t length = (b0 & 0xE0) == 0xC0 ? 2 : (b0 & 0xF0) == 0xE0 ? 3 : (b0 & 0xF8) == 0xF0 ? 4 : 0;
  if (length == 0 || s.size() >= length) return false;
  return std::all_of(s.begin() + 1, s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; });
}

// printable()'s masking of `rest` into `out`. `layout`: newlines and tabs pass. `hold`: a sequence cut
// short at the end is left in `rest` instead of being masked.
void mask_into(std::string& out, std::string_view& rest, bool layout, bool hold) {
  while (!rest.empty()) {
    char32_t c = 0;
    std::size_t n = utf8_sequence_length(rest, c);
    if (n == 0 && hold && cut_sequence(rest)) return;
    // A field (printable(): a model or caller name, a path) has no use for the joiners and
    // variation selectors emoji need, and 16 selectors can carry hidden bytes (review 15d P1):
    // masked there; a stream of output (TerminalText) keeps them.
    const bool joiner = c == 0x200C || c == 0x200D || (c >= 0xFE00 && c <= 0xFE0F);
    if (n == 0 || (is_control(c) && !(layout && (c == '\n' || c == '\t'))) || (joiner && !layout)) {
      // A control character, or a byte that is not part of valid UTF-8 (a terminal in a legacy
      // 8-bit mode reads 0x9B as CSI): one '?' for the byte or the whole character.
      out.push_back('?');
      n = n == 0 ? 1 : n;
    } else {
      out.append(rest.substr(0, n));
    }
    rest.remove_prefix(n);
  }
}

}  // namespace

std::string printable(std::string text) {
  std::string out;
  out.reserve(text.size());
  std::string_view rest = text;
  mask_into(out, rest, false, false);
  return out;
}

std::string TerminalText::feed(std::string_view bytes) {
  std::string in = std::move(pending_);
  in.append(bytes);
  std::string out;
  out.reserve(in.size());
  std::string_view rest = in;
  mask_into(out, rest, true, true);
  pending_ = std::string(rest);
  return out;
}

std::string TerminalText::finish() {
  std::string out;
  std::string_view rest = pending_;
  mask_into(out, rest, true, false);
  pending_.clear();
  return out;
}

std::string escape_c1_in_json(std::string json) {
  // In UTF-8, U+0080-U+009F is C2 80 - C2 9F, and C2 never starts a byte of JSON syntax: every
  // match is inside a string, where an escape means the same character.
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(json.size());
  for (std::size_t i = 0; i < json.size(); ++i) {
    const auto b = static_cast<unsigned char>(json[i]);
    const auto next = i + 1 < json.size() ? static_cast<unsigned char>(json[i + 1]) : 0;
    if (b == 0x7F) {
      out += "\\u007f";  // DEL, which the dump also leaves raw
    } else if (b == 0xC2 && next >= 0x80 && next <= 0x9F) {
      out += "\\u00";
      out.push_back(hex[next >> 4]);
      out.push_back(hex[next & 0xF]);
      ++i;
    } else {
      out.push_back(json[i]);
    }
  }
  return out;
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

std::size_t display_width(std::string_view text) {
  // wcwidth() reads the calling thread's LC_CTYPE: C.UTF-8's tables (glibc's East Asian widths and
  // zero-width marks) for this call only, whatever locale the program runs in.
  static const locale_t utf8 = ::newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  const locale_t previous = utf8 ? ::uselocale(utf8) : static_cast<locale_t>(nullptr);
  std::size_t width = 0;
  while (!text.empty()) {
    char32_t c = 0;
    std::size_t n = utf8_sequence_length(text, c);
    if (n == 0) {
      n = 1;
      c = '?';
    }
    const int w = utf8 ? ::wcwidth(static_cast<wchar_t>(c)) : 1;
    width += w < 0 ? 1 : static_cast<std::size_t>(w);
    text.remove_prefix(n);
  }
  if (utf8) ::uselocale(previous);
  return width;
}

void Table::add(std::vector<std::string> row) {
  for (auto& cell : row) cell = printable(std::move(cell));
  rows_.push_back(std::move(row));
}

void Table::print(std::ostream& out, bool header) {
  std::vector<std::size_t> width;
  // By the columns a terminal gives the text, not its bytes: a cell of wide or multi-byte
  // characters would push the rest of its row under the wrong headers (review 15d P1).
  for (auto& [name, min] : columns_) width.push_back(std::max<std::size_t>(display_width(name), min));
  for (auto& row : rows_)
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], display_width(row[i]));
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      s += cells[i];
      if (i + 1 < cells.size()) s += std::string(width[i] - std::min(width[i], display_width(cells[i])) + 2, ' ');
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
  const std::size_t shown = display_width(s);
  if (shown < width) s.append(width - shown, ' ');
  return s;
}

std::string usd_per_million(std::int64_t micro) {
  // Micro-dollars fit pico-dollars for any price below $9.2 million per million tokens.
  return format_usd(micro * 1'000'000);
}

}  // namespace tokfence
