#include <sstream>

#include <catch2/catch.hpp>

#include <string>

#include "core/text_format.hpp"

using tokfence::escape_c1_in_json;
using tokfence::printable;

TEST_CASE("text_format::printable masks C0 controls and DEL") {
  CHECK(printable("a\x1b]0;pwned\x07z") == "a?]0;pwned?z");
  CHECK(printable("line\nbreak\r\t") == "line?break??");
  CHECK(printable(std::string("nul\0x", 5)) == "nul?x");
  CHECK(printable("del\x7f") == "del?");
}

TEST_CASE("text_format::printable masks C1 controls (U+0080-U+009F) as one '?' each") {
  CHECK(printable("a\xc2\x9b" "31mred") == "a?31mred");  // U+009B CSI
  CHECK(printable("\xc2\x80\xc2\x9f") == "??");
  CHECK(printable("\xc2\x9d" "0;title\xc2\x9c") == "?0;title?");  // OSC ... ST
}

TEST_CASE("text_format::printable masks bytes that are not valid UTF-8") {
  CHECK(printable("\x9b" "31m") == "?31m");               // a lone C1 byte (8-bit CSI)
  CHECK(printable("\xff\xfe") == "??");
  CHECK(printable("\xc2") == "?");                        // cut sequence
  CHECK(printable("\xe2\x82") == "??");
  CHECK(printable("\xc0\x9b") == "??");                   // an overlong form of ESC
  CHECK(printable("\xed\xa0\x80") == "???");              // a surrogate
  CHECK(printable("\xf4\x90\x80\x80") == "????");         // above U+10FFFF
}

TEST_CASE("text_format::printable keeps valid UTF-8 text") {
  CHECK(printable("gpt-4o") == "gpt-4o");
  CHECK(printable("caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80 \xc2\xa0") == "caf\xc3\xa9 \xe2\x80\xa6 \xf0\x9f\x98\x80 \xc2\xa0");
}

TEST_CASE("text_format::TerminalText masks a stream like printable, keeping newlines and tabs") {
  tokfence::TerminalText t;
  CHECK(t.feed("up\x1b]52;c;Zm9v\x07\x1b[2J\r\n\tcol\x7f\n") == "up?]52;c;Zm9v??[2J?\n\tcol?\n");
  CHECK(t.feed("a\xc2\x9b" "31m\x9b" "32m\xff") == "a?31m?32m?");
  CHECK(t.finish().empty());
}

TEST_CASE("text_format::TerminalText holds back a character split between chunks") {
  tokfence::TerminalText t;
  CHECK(t.feed("caf\xc3") == "caf");
  CHECK(t.feed("\xa9 \xf0\x9f") == "\xc3\xa9 ");
  CHECK(t.feed("\x98") == "");
  CHECK(t.feed("\x80!") == "\xf0\x9f\x98\x80!");
  CHECK(t.feed("\xc2") == "");
  CHECK(t.feed("\x9b" "1m") == "?1m");  // C1 CSI split in two: still masked
  CHECK(t.feed("\xe2\x82") == "");
  CHECK(t.finish() == "??");              // the stream ended inside a character
  CHECK(t.feed("\xe2x") == "?x");        // not a continuation byte: masked at once
}

TEST_CASE("text_format::escape_c1_in_json writes C1 characters and DEL as escapes and leaves the rest") {
  CHECK(escape_c1_in_json("{\"m\":\"a\xc2\x9b" "b\"}") == "{\"m\":\"a\\u009bb\"}");
  CHECK(escape_c1_in_json("{\"m\":\"\xc2\x80\xc2\xa0\"}") == "{\"m\":\"\\u0080\xc2\xa0\"}");
  CHECK(escape_c1_in_json("[1,2]") == "[1,2]");
  CHECK(escape_c1_in_json("{\"m\":\"a\x7f\"}") == "{\"m\":\"a\\u007f\"}");
}

TEST_CASE("text_format::printable masks bidirectional and invisible format characters") {
  // Review 15b L4: an RLO in a model name reversed the rest of a `tokfence log` line.
  CHECK(printable("gpt\u202Eevil") == "gpt?evil");
  CHECK(printable("a\u2066b\u2069c\u200Fd\u061Ce") == "a?b?c?d?e");
  CHECK(printable("hid\u200Bden\u2060x\uFEFF") == "hid?den?x?");
  // Review 15c P1: TAG characters (hidden ASCII), fillers, separators that end a line.
  CHECK(printable("a\U000E0041\U000E007Fb") == "a??b");
  CHECK(printable("x\u00ADy\u3164z\u2028w\uFFFC") == "x?y?z?w?");
  // Joiners and variation selectors: a field (a model name) has no use for them and 16 selectors
  // can carry hidden bytes (review 15d P1); a stream of output keeps them for its emoji.
  CHECK(printable("gpt\u200D\uFE0Fx") == "gpt??x");
  tokfence::TerminalText emoji;
  CHECK(emoji.feed("\U0001F469\u200D\U0001F4BB\u2764\uFE0F") == "\U0001F469\u200D\U0001F4BB\u2764\uFE0F");
  tokfence::TerminalText t;
  CHECK(t.feed("ok\u202Dx\n") == "ok?x\n");
}

TEST_CASE("text_format::Table aligns by the columns a terminal shows, not by bytes") {
  // Review 15d P1: a model name of multi-byte or wide characters shifted its row's figures.
  CHECK(tokfence::display_width("gpt-4o") == 6);
  CHECK(tokfence::display_width("\u043C\u043E\u0434") == 3);         // Cyrillic: 2 bytes each, 1 column
  CHECK(tokfence::display_width("\u6A21\u578B") == 4);               // CJK: 2 columns each
  CHECK(tokfence::display_width("e\u0301") == 1);                    // a combining accent takes none
  tokfence::Table t({{"model", 0}, {"cost", 0}});
  t.add({"\u6A21\u578B\u043C\u043E\u0434", "$1"});
  t.add({"gpt-4o-mini", "$2"});
  std::ostringstream out;
  t.print(out, true);
  std::istringstream lines(out.str());
  std::string line;
  std::vector<std::size_t> cost_column;
  while (std::getline(lines, line)) cost_column.push_back(tokfence::display_width(line.substr(0, line.find('$') == std::string::npos ? line.find("cost") : line.find('$'))));
  REQUIRE(cost_column.size() == 3);
  CHECK(cost_column[0] == cost_column[1]);
  CHECK(cost_column[1] == cost_column[2]);
}
