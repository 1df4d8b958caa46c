#include "core/money.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace tokfence {

namespace {

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

std::string format_usd(Picodollars amount) {
  const bool negative = amount < 0;
  // -(INT64_MIN) does not fit: negate in unsigned arithmetic.
  const std::uint64_t magnitude =
      negative ? 0ULL - static_cast<std::uint64_t>(amount) : static_cast<std::uint64_t>(amount);
  const auto per_usd = static_cast<std::uint64_t>(kPicoPerUsd);
  std::string frac = std::to_string(magnitude % per_usd);
  frac.insert(0, 12 - frac.size(), '0');
  while (frac.size() > 2 && frac.back() == '0') frac.pop_back();
  return std::string(negative ? "-$" : "$") + std::to_string(magnitude / per_usd) + "." + frac;
}

std::expected<Picodollars, AmountError> parse_usd_amount(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (!text.empty() && text.front() == '$') text.remove_prefix(1);
  const auto dot = text.find('.');
  std::string_view whole = text.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if ((whole.empty() && frac.empty()) || !all_digits(whole) || !all_digits(frac))
    return std::unexpected(AmountError::not_a_number);
  if (frac.size() > 12) return std::unexpected(AmountError::too_precise);
  while (whole.size() > 1 && whole.front() == '0') whole.remove_prefix(1);
  if (whole.size() > 7) return std::unexpected(AmountError::too_large);
  Picodollars dollars = 0;
  for (char c : whole) dollars = dollars * 10 + (c - '0');
  Picodollars pico = 0;
  for (std::size_t i = 0; i < 12; ++i) pico = pico * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  const Picodollars total = dollars * kPicoPerUsd + pico;
  if (total > kMaxUsd * kPicoPerUsd) return std::unexpected(AmountError::too_large);
  return total;
}

std::optional<Picodollars> parse_decimal_scaled(std::string_view text, int scale_digits) {
  if (text.empty()) return std::nullopt;
  bool negative = false;
  if (text[0] == '-') {
    negative = true;
    text.remove_prefix(1);
  }
  const auto dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view frac = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
  if ((whole.empty() && frac.empty()) || !all_digits(whole) || !all_digits(frac)) return std::nullopt;
  // Up to $999,999.99 in either unit: beyond that int64 pico-dollars would overflow.
  if (whole.size() + static_cast<std::size_t>(scale_digits) > 18) return std::nullopt;
  std::string digits(whole);
  std::string f(frac.substr(0, std::min<std::size_t>(frac.size(), static_cast<std::size_t>(scale_digits))));
  f.append(static_cast<std::size_t>(scale_digits) - f.size(), '0');
  digits += f;
  std::int64_t value = 0;
  auto r = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (r.ec != std::errc()) return std::nullopt;
  return negative ? -value : value;
}

}  // namespace tokfence
