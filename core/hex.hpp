#pragma once
// The value of one hexadecimal digit, either case: 0-15, or -1 for any other character. One place
// for the percent-decoding (proxy/http/routing, inspect) and the hex runs ImmuneFence decodes
// (proxy/immune/encoded).
namespace tokfence {

constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace tokfence
