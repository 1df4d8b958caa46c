#pragma once
// Text shaping shared by the CLI's output (launcher/cli, launcher/watch): aligned tables, numbers
// with thousands separators, terminal-safe text. Timestamps are core/time's.
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tokfence {

// Text printed for a terminal often comes from elsewhere: from clients and their processes (a model
// name from a request body, a process name it chose for itself) or from a config file. Control
// characters (C0, DEL and C1, U+0080-U+009F), the bidirectional and invisible format characters
// (U+202E and friends: text_format.cpp is_control) and bytes that are not valid UTF-8 are shown as
// '?', so such text cannot send escape sequences to the terminal that reads it, end a line early,
// or show itself other than it is.
std::string printable(std::string text);

// The columns a terminal gives `text` (UTF-8): wide characters two, combining marks none (glibc's
// C.UTF-8 wcwidth); an invalid byte one. For aligning tables of text from elsewhere.
std::size_t display_width(std::string_view text);

// What to write to a terminal before tokfence speaks after another program had it (the agent in
// `tokfence run`): CAN aborts an escape sequence in progress and ST ends an open string (an
// unterminated OSC would take tokfence's text for a window title: review 14d T2), then attributes
// are reset, the cursor shown and a fresh line begun.
inline constexpr std::string_view kTerminalReset = "\x18\x1b\\\x1b[0m\x1b[?25h\r\n";

// printable() for a stream of bytes from elsewhere shown as it arrives (a container's output in
// `tokfence launch`, `launch logs`): newlines and tabs pass, every other control character
// (carriage return included: it lets a line be overwritten) and invalid UTF-8 becomes '?'. A UTF-8
// character split between two chunks is held back until the next one; finish() masks what is left.
class TerminalText {
 public:
  std::string feed(std::string_view bytes);
  std::string finish();

 private:
  std::string pending_;
};

// JSON text (from nlohmann::json::dump, which writes DEL and C1 characters raw) with each of them
// written as a JSON escape instead: same JSON, nothing a terminal acts on.
std::string escape_c1_in_json(std::string json);

// 1234567 -> "1,234,567"; a negative number keeps its sign in front.
std::string with_commas(std::int64_t n);

// Micro-dollars per million tokens as "$2.50" / "$0.075": at least two decimals, no trailing zeros
// (`pricing list` and `pricing update` print prices the same way).
std::string usd_per_million(std::int64_t micro);

// `s` followed by spaces up to `width` (unchanged when longer): fixed columns that do not grow.
std::string pad(std::string s, std::size_t width);


// Column-aligned text. Widths grow to fit the rows given to print(); in follow mode rows arrive one
// batch at a time, so the header's minimum widths keep columns roughly aligned. Every cell passes
// through printable().
class Table {
 public:
  // Each column: its header and a minimum width.
  explicit Table(std::vector<std::pair<std::string, int>> columns) : columns_(std::move(columns)) {}
  void add(std::vector<std::string> row);
  // Prints the rows added since the last print() (and the header line first if `header`), then
  // forgets them. Trailing spaces are trimmed from every line.
  void print(std::ostream& out, bool header);

 private:
  std::vector<std::pair<std::string, int>> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace tokfence
