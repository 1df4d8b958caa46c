#pragma once
// Money, exactly: amounts are whole pico-dollars (1e-12 USD) in 64 bits, so a request's cost, a
// budget and a provider's bill add up without rounding. One formatter and one parser serve the
// request log, the budgets, the pricing table and `watch`.
#include <climits>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>

namespace tokfence {

using Picodollars = std::int64_t;
inline constexpr Picodollars kPicoPerUsd = 1'000'000'000'000;
// Pico-dollars in 64 bits end near $9.2 million; an amount beyond $1 million is surely a typo.
inline constexpr std::int64_t kMaxUsd = 1'000'000;

// Sums of amounts saturate instead of wrapping: one absurd cost (an upstream reporting 10^10 tokens
// is priced at the largest amount, metering/pricing) plus any other must stay the largest amount,
// not turn into a negative spend that opens every budget it counts against.
constexpr Picodollars add_saturating(Picodollars a, Picodollars b) {
  Picodollars out;
  if (__builtin_add_overflow(a, b, &out)) return b > 0 ? INT64_MAX : INT64_MIN;
  return out;
}

// "$1.50", "$0.000123", "$0.00000005", "-$2.00": exact, trailing zeros dropped but cents kept.
std::string format_usd(Picodollars amount);

enum class AmountError { not_a_number, too_precise, too_large };

// Dollars as written by a person: "12.5", "0.75", ".5", "5.", "$3", surrounding spaces allowed.
// Never negative; at most 12 decimals (finer is not exact); at most kMaxUsd.
std::expected<Picodollars, AmountError> parse_usd_amount(std::string_view text);
inline std::optional<Picodollars> parse_usd(std::string_view text) {
  auto v = parse_usd_amount(text);
  return v ? std::optional<Picodollars>(*v) : std::nullopt;
}

// A decimal number as the providers' APIs report it, in units of 10^-scale_digits pico-dollars'
// worth: "-1.25" with scale_digits 12 is -1.25 USD. Digits past the scale are dropped.
std::optional<Picodollars> parse_decimal_scaled(std::string_view text, int scale_digits);

}  // namespace tokfence
