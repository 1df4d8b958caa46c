#pragma once
// The encoded forms a stolen secret is most often sent in: base64 (standard or URL-safe) and hex.
// An agent that wants a decoy or a key past the byte scan (SecretScanner matches raw bytes only)
// encodes it and asks the model to decode it; the model reads base64 and hex fluently. So every
// run of text that could be either is decoded and scanned too.
//
// What counts as a run: a maximal stretch of the base64 alphabet (A-Z a-z 0-9 + / - _) of at
// least 22 characters (what 16 decoded bytes, SecretScanner's window, take), decoded at each of
// its four alignments, since the secret's encoding need not start where the run does (glued to a
// word, or after a prefix the agent tells the model to drop); and of hex digits, at least 32
// (16 bytes), at both alignments. '=' padding ends a run. A JSON `\/` inside base64 is read as '/'
// by the caller's unescaped pass (scan_request's json_unescaped).
//
// Not covered (docs/IMMUNEFENCE.md, limits): other encodings (base32, rot13, reversal), an
// encoding of an encoding, a secret split over several runs or requests.
//
// Cost: one table look-up per byte to find runs, then base64/hex decoding and a scan of each run
// (four times for base64): ordinary prose and code have few runs that long.
#include <optional>
#include <string_view>

#include "proxy/immune/scanner.hpp"

namespace tokfence::immune {

inline constexpr std::size_t kMinBase64Run = 22;
inline constexpr std::size_t kMinHexRun = 32;

// The first hit in a decoded base64 or hex run of `text`, or nothing.
std::optional<Hit> find_encoded(const SecretScanner& scanner, std::string_view text);

}  // namespace tokfence::immune
