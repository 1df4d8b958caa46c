#pragma once
// Small helpers shared by the fuzz targets (tests/fuzz/fuzz_*.cpp): the input as a string_view,
// a byte that picks a variant, and a check that aborts (so libFuzzer reports it) when an
// invariant of the code under test breaks.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace tokfence::fuzz {

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Takes the first byte of `in` (0 when empty) to choose a variant of the test.
inline std::uint8_t take_byte(std::string_view& in) {
  if (in.empty()) return 0;
  auto b = static_cast<std::uint8_t>(in.front());
  in.remove_prefix(1);
  return b;
}

[[noreturn]] inline void invariant_broken(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
  std::abort();
}

}  // namespace tokfence::fuzz

#define FUZZ_CHECK(cond) \
  do {                   \
    if (!(cond)) ::tokfence::fuzz::invariant_broken(#cond, __FILE__, __LINE__); \
  } while (0)
