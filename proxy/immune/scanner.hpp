#pragma once
// SecretScanner: the sensor behind "honeytoken seen" and "real secret seen outbound" (issue #19).
// It answers one question about a piece of traffic: does it contain a fragment of at least
// `kWindow` (16) bytes of any needle (a session's decoy values, the vault's keys)? Sixteen bytes of a
// random key are ~95 bits: a match is never chance, and a key cut short or wrapped still matches.
//
// Why it cannot fire on ordinary coding traffic: it only ever matches bytes of the needles
// themselves, never a shape. An example key (an OpenAI project key of x's, AWS's documented example key id), base64,
// hex, `sudo`, `rm -rf` match nothing. The one shared part of a real key and an example is its
// provider prefix, so no window that starts inside the prefix is used: the prefix is the longest
// one ending in '-' or '_' within the first 20 bytes ("sk-ant-api03-", "sk-proj-"). This holds for
// decoys too: a decoy shaped like an Anthropic key has 13 fixed bytes, and a window of those plus 3
// random characters (18 bits) would match an example key once in 2^18 per session. (A UUID-shaped
// decoy thus keeps only its last 17 bytes; ghp_... loses its 4-byte prefix; AKIA..., with no
// separator, keeps all: its first window still has 12 random characters, 60 bits.)
//
// Ignored, by design: needles shorter than `kWindow`, and needles with fewer than `kWindow` bytes
// after their prefix (nothing long enough to tell them from chance). Matching is on the raw bytes:
// a needle that arrives escaped, percent-encoded or base64-encoded is not recognised (decoys and
// provider keys are made of characters JSON never escapes, so in a JSON body they are verbatim).
//
// How it is fast (the essay): a 16-byte window of a needle that occurs in the text at position p
// contains the 8-byte gram that starts at the first multiple of 8 at or after p. So the scan reads
// only the grams at text offsets 0, 8, 16, ...: one multiply and one bit test in a Bloom-like bitmap
// (one bit per hash, ~64 bits per needle gram, at most 1 MiB) per 8 bytes. A set bit sends the gram
// to an open-addressing table of every 8-gram of every needle with where it occurs; each equal gram
// is then extended byte by byte up to 8 bytes each side, and a run of >= 16 bytes is a hit. The
// common case is one bit test per 8 bytes; find() and feed() never allocate.
//
// Secrets: the constructor copies the needle values into mlock()ed memory (LockedBuffer), together
// with the gram table (which holds the same bytes), and wipes the strings it was given; the
// destructor wipes both. Keep no other copy: build the vector in place and std::move it in.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/locked_buffer.hpp"

namespace tokfence::immune {

enum class NeedleKind : std::uint8_t { decoy, vault_key };

struct Needle {
  std::string value;
  NeedleKind kind;
  std::uint32_t owner;  // what the caller needs back on a hit, e.g. a session or provider index
};

struct Hit {
  NeedleKind kind;
  std::uint32_t owner;
  friend bool operator==(const Hit&, const Hit&) = default;
};

// Immutable once built: share one among threads as std::shared_ptr<const SecretScanner>, and build a
// new one when the needles change.
class SecretScanner {
 public:
  static constexpr std::size_t kWindow = 16;

  // Takes the needles and wipes their values (see the header comment). Throws std::length_error
  // only for more than 4 GiB of needles.
  explicit SecretScanner(std::vector<Needle> needles);
  SecretScanner(SecretScanner&&) noexcept = default;
  SecretScanner& operator=(SecretScanner&&) noexcept = default;

  // A hit for some needle with a fragment of >= kWindow bytes in `text` (the first found; which one
  // when several occur is unspecified), or nothing.
  std::optional<Hit> find(std::string_view text) const;
  // No usable needle (all too short, or none given): find() is always empty.
  bool empty() const { return needles_.empty(); }
  // How many needles are used (the others were too short).
  std::size_t size() const { return needles_.size(); }

 private:
  struct Entry {  // one 8-gram of one needle; needle_plus_one == 0 marks an empty slot
    std::uint64_t gram;
    std::uint32_t needle_plus_one;
    std::uint32_t offset;  // where the gram starts in the needle
  };
  struct NeedleInfo {
    std::uint32_t begin;        // in bytes_
    std::uint32_t size;
    std::uint32_t usable_from;  // the first byte a window may start at (past a vault key's prefix)
    NeedleKind kind;
    std::uint32_t owner;
  };

  std::optional<Hit> probe(const char* text, std::size_t size, std::size_t at, std::uint64_t gram,
                           std::uint64_t hash) const;

  LockedBuffer bytes_;  // the needles' values, back to back
  LockedBuffer table_;  // Entry[table_mask_ + 1]
  LockedBuffer bitmap_; // std::uint64_t words
  std::vector<NeedleInfo> needles_;
  std::uint64_t multiplier_ = 0;  // random, odd: multiply-shift hashing
  unsigned table_shift_ = 63;
  unsigned bitmap_shift_ = 63;
  std::size_t table_mask_ = 0;
};

// One stream (a response body, an egress tunnel's direction) scanned chunk by chunk as it passes:
// a needle fragment split across chunks is still found, and nothing is buffered but the last
// kWindow - 1 bytes. The scanner may differ from one call to the next (the bytes kept do not
// depend on it).
class StreamScan {
 public:
  std::optional<Hit> feed(const SecretScanner& scanner, std::string_view chunk);

 private:
  std::array<char, SecretScanner::kWindow - 1> carry_{};
  std::uint8_t carry_size_ = 0;
};

}  // namespace tokfence::immune
