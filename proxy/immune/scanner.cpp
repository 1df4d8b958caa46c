#include "proxy/immune/scanner.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>

#include "core/secret.hpp"

namespace tokfence::immune {
namespace {

constexpr std::size_t kGram = 8;
constexpr std::size_t kPrefixScan = 20;       // a provider prefix ends within the first 20 bytes
constexpr std::size_t kBitsPerGram = 64;      // bitmap: ~1.5 % of other grams pass
constexpr unsigned kMaxBitmapLog2 = 23;       // 1 MiB
constexpr unsigned kMinBitmapLog2 = 12;       // 512 bytes

// The first byte a window may start at: past the longest prefix ending in '-' or '_' within the
// first kPrefixScan bytes.
std::size_t usable_from(std::string_view value) {
  std::size_t from = 0;
  for (std::size_t i = 0; i < std::min(value.size(), kPrefixScan); ++i)
    if (value[i] == '-' || value[i] == '_') from = i + 1;
  return from;
}

unsigned log2_at_least(std::size_t n) { return n <= 1 ? 0 : static_cast<unsigned>(std::bit_width(n - 1)); }

std::uint64_t load_gram(const char* p) {
  std::uint64_t g;
  std::memcpy(&g, p, sizeof g);
  return g;
}

}  // namespace

SecretScanner::SecretScanner(std::vector<Needle> needles) {
  std::size_t total = 0, grams = 0;
  for (const auto& n : needles) {
    const std::size_t from = usable_from(n.value);
    if (n.value.size() < kWindow || n.value.size() - from < kWindow) continue;
    total += n.value.size();
    grams += n.value.size() - from - kGram + 1;
  }
  if (total > std::numeric_limits<std::uint32_t>::max() || needles.size() >= std::numeric_limits<std::uint32_t>::max())
    throw std::length_error("secret scanner: needles too large");
  if (total == 0) {
    for (auto& n : needles) wipe(n.value);
    return;
  }

  bytes_ = LockedBuffer(total);
  std::size_t at = 0;
  for (auto& n : needles) {
    const std::size_t from = usable_from(n.value);
    if (n.value.size() >= kWindow && n.value.size() - from >= kWindow) {
      std::memcpy(bytes_.data() + at, n.value.data(), n.value.size());
      needles_.push_back({static_cast<std::uint32_t>(at), static_cast<std::uint32_t>(n.value.size()),
                          static_cast<std::uint32_t>(from), n.kind, n.owner});
      at += n.value.size();
    }
    wipe(n.value);
  }

  if (RAND_bytes(reinterpret_cast<unsigned char*>(&multiplier_), sizeof multiplier_) != 1)
    multiplier_ = 0x9E3779B97F4A7C15ull;  // correctness does not depend on it, only the spread
  multiplier_ |= 1;

  const unsigned table_log2 = std::max(4u, log2_at_least(2 * grams));  // load <= 1/2
  table_shift_ = 64 - table_log2;
  table_mask_ = (std::size_t{1} << table_log2) - 1;
  table_ = LockedBuffer((table_mask_ + 1) * sizeof(Entry));
  const unsigned bitmap_log2 = std::clamp(log2_at_least(kBitsPerGram * grams), kMinBitmapLog2, kMaxBitmapLog2);
  bitmap_shift_ = 64 - bitmap_log2;
  bitmap_ = LockedBuffer((std::size_t{1} << bitmap_log2) / 8);

  auto* table = reinterpret_cast<Entry*>(table_.data());
  auto* bitmap = reinterpret_cast<std::uint64_t*>(bitmap_.data());
  for (std::uint32_t i = 0; i < needles_.size(); ++i) {
    const NeedleInfo& n = needles_[i];
    const char* s = reinterpret_cast<const char*>(bytes_.data()) + n.begin;
    for (std::uint32_t j = n.usable_from; j + kGram <= n.size; ++j) {
      const std::uint64_t g = load_gram(s + j);
      const std::uint64_t h = g * multiplier_;
      const std::uint64_t b = h >> bitmap_shift_;
      bitmap[b >> 6] |= std::uint64_t{1} << (b & 63);
      std::size_t slot = h >> table_shift_;
      while (table[slot].needle_plus_one != 0) slot = (slot + 1) & table_mask_;
      table[slot] = {g, i + 1, j};
    }
  }
}

std::optional<Hit> SecretScanner::probe(const char* text, std::size_t size, std::size_t at, std::uint64_t gram,
                                        std::uint64_t hash) const {
  const auto* table = reinterpret_cast<const Entry*>(table_.data());
  const auto* bytes = reinterpret_cast<const char*>(bytes_.data());
  // Bounded: the table is at most half full, so an empty slot ends every run.
  for (std::size_t slot = hash >> table_shift_; table[slot].needle_plus_one != 0; slot = (slot + 1) & table_mask_) {
    const Entry& e = table[slot];
    if (e.gram != gram) continue;
    const NeedleInfo& n = needles_[e.needle_plus_one - 1];
    const char* s = bytes + n.begin;
    // The window that holds this gram starts at most 8 bytes before it and ends at most 8 after:
    // extend each way that far (not past the text, the needle or the needle's prefix).
    const std::size_t max_left = std::min<std::size_t>({kGram, e.offset - n.usable_from, at});
    std::size_t left = 0;
    while (left < max_left && text[at - 1 - left] == s[e.offset - 1 - left]) ++left;
    const std::size_t max_right = std::min<std::size_t>({kGram, n.size - e.offset - kGram, size - at - kGram});
    std::size_t right = 0;
    while (right < max_right && text[at + kGram + right] == s[e.offset + kGram + right]) ++right;
    if (left + kGram + right >= kWindow) return Hit{n.kind, n.owner};
  }
  return std::nullopt;
}

std::optional<Hit> SecretScanner::find(std::string_view text) const {
  if (needles_.empty() || text.size() < kWindow) return std::nullopt;
  const char* t = text.data();
  const std::size_t n = text.size();
  const auto* bitmap = reinterpret_cast<const std::uint64_t*>(bitmap_.data());
  const std::uint64_t m = multiplier_;
  const unsigned shift = bitmap_shift_;
  auto passes = [&](std::size_t at) {
    const std::uint64_t b = (load_gram(t + at) * m) >> shift;
    return bitmap[b >> 6] >> (b & 63) & 1;
  };
  auto check = [&](std::size_t at) -> std::optional<Hit> {
    const std::uint64_t g = load_gram(t + at);
    return probe(t, n, at, g, g * m);
  };
  std::size_t at = 0;
  // Four grams per round, their bit tests combined into one branch (the common case: none set).
  for (; at + 4 * kGram <= n; at += 4 * kGram) {
    if ((passes(at) | passes(at + kGram) | passes(at + 2 * kGram) | passes(at + 3 * kGram)) == 0) [[likely]]
      continue;
    for (std::size_t k = 0; k < 4; ++k)
      if (passes(at + k * kGram))
        if (auto hit = check(at + k * kGram)) return hit;
  }
  for (; at + kGram <= n; at += kGram)
    if (passes(at))
      if (auto hit = check(at)) return hit;
  return std::nullopt;
}

std::optional<Hit> StreamScan::feed(const SecretScanner& scanner, std::string_view chunk) {
  constexpr std::size_t kCarry = SecretScanner::kWindow - 1;
  if (chunk.empty()) return std::nullopt;
  std::optional<Hit> hit;
  // A window that crosses into this chunk starts in the last kCarry bytes before it and ends within
  // its first kCarry bytes: scan the two together, then the chunk alone.
  if (carry_size_ > 0) {
    std::array<char, 2 * kCarry> joint;
    const std::size_t take = std::min(chunk.size(), kCarry);
    std::memcpy(joint.data(), carry_.data(), carry_size_);
    std::memcpy(joint.data() + carry_size_, chunk.data(), take);
    hit = scanner.find({joint.data(), carry_size_ + take});
  }
  if (!hit) hit = scanner.find(chunk);
  if (chunk.size() >= kCarry) {
    std::memcpy(carry_.data(), chunk.data() + chunk.size() - kCarry, kCarry);
    carry_size_ = kCarry;
  } else {
    const std::size_t keep = std::min<std::size_t>(carry_size_, kCarry - chunk.size());
    std::memmove(carry_.data(), carry_.data() + carry_size_ - keep, keep);
    std::memcpy(carry_.data() + keep, chunk.data(), chunk.size());
    carry_size_ = static_cast<std::uint8_t>(keep + chunk.size());
  }
  return hit;
}

}  // namespace tokfence::immune
