#include "proxy/immune/capability.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "core/file.hpp"
#include "core/secret.hpp"

namespace tokfence::immune {

namespace {

using json = nlohmann::json;

constexpr std::size_t kSignatureBytes = 64;
constexpr std::size_t kMaxTokenBytes = 2048;  // a token is ~300 bytes; anything far longer is not one

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(std::string_view in) {
  std::string out;
  out.reserve((in.size() * 4 + 2) / 3);
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(kBase64Url[(v >> shift) & 63]);
  }
  if (const std::size_t rest = in.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out.push_back(kBase64Url[(v >> 18) & 63]);
    out.push_back(kBase64Url[(v >> 12) & 63]);
    if (rest == 2) out.push_back(kBase64Url[(v >> 6) & 63]);
  }
  return out;
}

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Unpadded base64url only; any other character, or a length no encoder writes, is malformed.
std::optional<std::string> unbase64url(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  unsigned acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = base64url_value(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical trailing bits
  return out;
}

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Bio = std::unique_ptr<BIO, BioFree>;

std::optional<Claims> claims_from(std::string_view payload) {
  const json j = json::parse(payload, nullptr, false);
  if (!j.is_object() || j.value("v", 0) != 1) return std::nullopt;
  auto text = [&](const char* key) -> const std::string* {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get_ptr<const std::string*>() : nullptr;
  };
  auto number = [&](const char* key) -> std::optional<std::int64_t> {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    return it->get<std::int64_t>();
  };
  const auto *cid = text("cid"), *sid = text("sid"), *scope = text("scope"), *risk = text("risk"),
             *nonce = text("nonce");
  const auto iat = number("iat"), exp = number("exp");
  if (!cid || !sid || !scope || !risk || !nonce || !iat || !exp) return std::nullopt;
  auto state = parse_risk_state(*risk);
  if (!state || (*scope != "proxy" && *scope != "safe")) return std::nullopt;
  return Claims{*cid, *sid, *scope, *state, *iat, *exp, *nonce};
}

}  // namespace

std::string_view to_string(RiskState state) {
  switch (state) {
    case RiskState::green: return "GREEN";
    case RiskState::yellow: return "YELLOW";
    case RiskState::orange: return "ORANGE";
    case RiskState::red: return "RED";
  }
  return "RED";
}

std::optional<RiskState> parse_risk_state(std::string_view text) {
  for (auto s : {RiskState::green, RiskState::yellow, RiskState::orange, RiskState::red})
    if (to_string(s) == text) return s;
  return std::nullopt;
}

std::string_view to_string(TokenProblem problem) {
  switch (problem) {
    case TokenProblem::malformed: return "malformed";
    case TokenProblem::bad_signature: return "bad signature";
    case TokenProblem::expired: return "expired";
  }
  return "malformed";
}

std::string token_hash(std::string_view token) {
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest{};
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest.data());
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(digest.size() * 2);
  for (unsigned char b : digest) {
    out.push_back(hex[b >> 4]);
    out.push_back(hex[b & 15]);
  }
  return out;
}

struct SigningKey::Impl {
  Pkey key;
};

SigningKey::SigningKey(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SigningKey::SigningKey(SigningKey&&) noexcept = default;
SigningKey& SigningKey::operator=(SigningKey&&) noexcept = default;
SigningKey::~SigningKey() = default;

Result<SigningKey> SigningKey::generate() {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) return fail("immunefence: could not generate an Ed25519 signing key (OpenSSL)");
  return SigningKey(std::make_unique<Impl>(Impl{std::move(key)}));
}

Result<SigningKey> SigningKey::load_or_create(const std::filesystem::path& file) {
  auto dir = file::open_dir_nofollow(file.parent_path());
  if (!dir) return std::unexpected(dir.error());
  const std::string name = file.filename().string();
  struct stat st {};
  if (::fstatat(dir->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) return fail("immunefence: cannot read " + file.string() + ": " + std::strerror(errno));
    auto fresh = generate();
    if (!fresh) return fresh;
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), fresh->impl_->key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
      return fail("immunefence: could not encode the signing key (OpenSSL)");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    std::string pem(data, static_cast<std::size_t>(size));
    auto written = file::write_atomic_at(dir->get(), name, pem, file::WriteOptions{0600, std::nullopt});
    wipe(pem);
    if (!written) return std::unexpected(written.error());
    return fresh;
  }
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0)
    return fail("immunefence: " + file.string() +
                " must be a regular file of this user with mode 0600 (the daemon does not sign with a key others "
                "can read or replace): fix its mode, or remove it to have a new key made (tokens issued so far "
                "then stop working)");
  auto pem = file::read_at(dir->get(), name, 64 * 1024);
  if (!pem) return std::unexpected(pem.error());
  Bio bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
  Pkey key(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  wipe(*pem);
  if (!key || EVP_PKEY_get_id(key.get()) != EVP_PKEY_ED25519)
    return fail("immunefence: " + file.string() +
                " is not an Ed25519 private key in PEM: remove it to have a new one made (tokens issued so far then "
                "stop working)");
  return SigningKey(std::make_unique<Impl>(Impl{std::move(key)}));
}

std::string SigningKey::sign(Claims claims) const {
  if (claims.nonce.empty()) claims.nonce = file::random_hex(32);
  const json payload = {{"v", 1},
                        {"cid", claims.client_id},
                        {"sid", claims.session_id},
                        {"scope", claims.scope},
                        {"risk", to_string(claims.risk)},
                        {"iat", claims.issued_at_ms},
                        {"exp", claims.expires_at_ms},
                        {"nonce", claims.nonce}};
  std::string token = std::string(kTokenPrefix) + base64url(payload.dump());
  std::array<unsigned char, kSignatureBytes> sig{};
  std::size_t sig_len = sig.size();
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), sig.data(), &sig_len, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size()) != 1)
    throw std::runtime_error("immunefence: Ed25519 signing failed (OpenSSL)");
  token.push_back('.');
  token += base64url(std::string_view(reinterpret_cast<const char*>(sig.data()), sig_len));
  return token;
}

std::expected<Claims, TokenProblem> SigningKey::verify(std::string_view token, std::int64_t now_ms) const {
  if (!looks_like_token(token) || token.size() > kMaxTokenBytes) return std::unexpected(TokenProblem::malformed);
  const auto dot = token.rfind('.');
  if (dot < kTokenPrefix.size()) return std::unexpected(TokenProblem::malformed);
  const std::string_view signed_part = token.substr(0, dot);
  const auto payload = unbase64url(signed_part.substr(kTokenPrefix.size()));
  const auto sig = unbase64url(token.substr(dot + 1));
  if (!payload || !sig || sig->size() != kSignatureBytes) return std::unexpected(TokenProblem::malformed);
  MdCtx ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, impl_->key.get()) != 1 ||
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size()) != 1)
    return std::unexpected(TokenProblem::bad_signature);
  auto claims = claims_from(*payload);
  if (!claims) return std::unexpected(TokenProblem::malformed);  // signed by us, so a bug: still refused
  if (claims->expires_at_ms <= now_ms) return std::unexpected(TokenProblem::expired);
  return std::move(*claims);
}

}  // namespace tokfence::immune
