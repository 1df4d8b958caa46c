#pragma once
// Capability tokens (docs/IMMUNEFENCE.md): what an agent sends as its API key. A token says which
// session it belongs to and until when, signed with the daemon's Ed25519 key, so the proxy knows
// *which agent* is calling from the request alone: the caller look-up by peer process is advisory
// (a process can be named anything), a signature is not.
//
//   tfc1.<base64url(claims JSON)>.<base64url(Ed25519 signature over "tfc1.<claims>")>
//
// Claims: v (1), cid (client id: the agent's label), sid (session id), scope ("proxy"|"safe"),
// risk (the session's risk state when issued), iat and exp (Unix ms), nonce (128 random bits, so
// two tokens never repeat). The signature only says the daemon issued it: whether its session is
// still alive (not revoked, not RED) is the session registry's question (sessions.hpp), and the
// registry keeps only SHA-256 hashes of tokens, never tokens.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace tokfence::immune {

enum class RiskState : std::uint8_t { green, yellow, orange, red };
std::string_view to_string(RiskState state);  // "GREEN", ...
std::optional<RiskState> parse_risk_state(std::string_view text);

inline constexpr std::string_view kTokenPrefix = "tfc1.";

struct Claims {
  std::string client_id;
  std::string session_id;
  std::string scope = "proxy";
  RiskState risk = RiskState::green;
  std::int64_t issued_at_ms = 0;
  std::int64_t expires_at_ms = 0;
  std::string nonce;  // 32 hex characters; filled by sign() when empty
};

// Why a token was not accepted by its signature and shape.
enum class TokenProblem : std::uint8_t { malformed, bad_signature, expired };
std::string_view to_string(TokenProblem problem);

// Whether `value` is meant as a capability token (it has the prefix): such a value is verified
// and refused when bad, never treated as "no token".
inline bool looks_like_token(std::string_view value) { return value.starts_with(kTokenPrefix); }

// Lowercase hex SHA-256 of a token: what the registry stores and compares.
std::string token_hash(std::string_view token);

class SigningKey {
 public:
  // A fresh key (tests, and a first start).
  static Result<SigningKey> generate();
  // The key in `file` (PKCS#8 PEM, mode 0600 under the 0700 home); created when absent. A file
  // that is not a private Ed25519 key, or readable by others, fails the start: the daemon does
  // not sign with a key someone else may have.
  static Result<SigningKey> load_or_create(const std::filesystem::path& file);

  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  ~SigningKey();

  // The token for `claims` (nonce filled in when empty).
  std::string sign(Claims claims) const;
  // The claims of a token this key signed and that has not expired at `now_ms`.
  std::expected<Claims, TokenProblem> verify(std::string_view token, std::int64_t now_ms) const;

  struct Impl;

 private:
  explicit SigningKey(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tokfence::immune
