// The sealed-file format (vault.enc and export bundles): round trip, header fields, and every way a
// file can be wrong. KDF costs are lowered through the test hook; the file records them, so reading
// exercises the same code path as production files.
#include <catch2/catch.hpp>

#include "vault/sealed_file.hpp"

using namespace tokfence;
using namespace tokfence::vault;

namespace {

constexpr sealed::KdfParams kFastKdf{1, 64, 1};

struct FastKdf {
  FastKdf() { sealed::testing::set_write_kdf(kFastKdf); }
  ~FastKdf() { sealed::testing::set_write_kdf(std::nullopt); }
};

const sealed::Subject kSubject{"vault", "/h/vault.enc", "check TOKFENCE_VAULT_PASSPHRASE"};
const std::string kPlain = R"({"openai":{"key":"k-123","added_at":1,"rotated_at":0}})";

std::string sealed_sample(const SecretString& pass) {
  auto bytes = sealed::seal(sealed::Kind::vault, kPlain, pass, nullptr);
  REQUIRE(bytes);
  return *bytes;
}

std::string error_of(const std::string& file, const SecretString& pass, sealed::Kind kind = sealed::Kind::vault) {
  auto r = sealed::open(file, kind, pass, kSubject, nullptr);
  REQUIRE_FALSE(r);
  return r.error().message;
}

}  // namespace

TEST_CASE("vault::sealed round-trips a payload and records its header fields") {
  FastKdf fast;
  SecretString pass("correct horse");
  std::string file = sealed_sample(pass);
  CHECK(file.size() == sealed::kHeaderSize + kPlain.size() + sealed::kTagSize);
  CHECK(file.substr(0, 8) == "TOKFENCE");
  CHECK(file.find("k-123") == std::string::npos);

  auto h = sealed::parse_header(file, sealed::Kind::vault, kSubject);
  REQUIRE(h);
  CHECK(h->version == sealed::kFormatVersion);
  CHECK(h->kind == sealed::Kind::vault);
  CHECK(h->kdf_id == sealed::kKdfArgon2id);
  CHECK(h->kdf == kFastKdf);
  CHECK(h->ciphertext_length == kPlain.size());

  auto plain = sealed::open(file, sealed::Kind::vault, pass, kSubject, nullptr);
  REQUIRE(plain);
  CHECK(plain->view() == kPlain);
}

TEST_CASE("vault::sealed uses a fresh salt and nonce for every write") {
  FastKdf fast;
  SecretString pass("p");
  auto a = sealed::parse_header(sealed_sample(pass), sealed::Kind::vault, kSubject);
  auto b = sealed::parse_header(sealed_sample(pass), sealed::Kind::vault, kSubject);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->salt != b->salt);
  CHECK(a->nonce != b->nonce);
}

TEST_CASE("vault::sealed writes the production Argon2id parameters unless a test lowers them") {
  SecretString pass("p");
  auto file = sealed::seal(sealed::Kind::bundle, "{}", pass, nullptr);
  REQUIRE(file);
  auto h = sealed::parse_header(*file, sealed::Kind::bundle, kSubject);
  REQUIRE(h);
  CHECK(h->kdf == sealed::KdfParams{3, 196608, 4});
}

TEST_CASE("vault::sealed rejects a wrong passphrase") {
  FastKdf fast;
  std::string file = sealed_sample(SecretString("right"));
  std::string message = error_of(file, SecretString("wrong"));
  CHECK(message == "vault: wrong passphrase: /h/vault.enc: check TOKFENCE_VAULT_PASSPHRASE");
}

TEST_CASE("vault::sealed detects tampered ciphertext through the GCM tag") {
  FastKdf fast;
  SecretString pass("p");
  std::string file = sealed_sample(pass);
  for (std::size_t at : {sealed::kHeaderSize, file.size() - 20, file.size() - 1}) {
    std::string bad = file;
    bad[at] = static_cast<char>(bad[at] ^ 0x01);
    CHECK(error_of(bad, pass).rfind("vault: authentication failed, the file was tampered with or damaged: /h/vault.enc", 0) == 0);
  }
}

TEST_CASE("vault::sealed authenticates the header as GCM additional data") {
  FastKdf fast;
  SecretString pass("p");
  std::string file = sealed_sample(pass);
  std::string bad = file;
  bad[40] = static_cast<char>(bad[40] ^ 0x80);  // first nonce byte
  CHECK(error_of(bad, pass).find("authentication failed") != std::string::npos);
}

TEST_CASE("vault::sealed reports a truncated file") {
  FastKdf fast;
  SecretString pass("p");
  std::string file = sealed_sample(pass);
  for (std::size_t len : {std::size_t{4}, std::size_t{9}, std::size_t{50}, file.size() - 1, file.size() - 17}) {
    auto h = sealed::parse_header(file.substr(0, len), sealed::Kind::vault, kSubject);
    REQUIRE_FALSE(h);
    INFO(h.error().message);
    CHECK(h.error().message.rfind("vault: truncated (", 0) == 0);
    CHECK(h.error().message.find("/h/vault.enc") != std::string::npos);
  }
}

TEST_CASE("vault::sealed reports a foreign file by its magic") {
  SecretString pass("p");
  for (std::string foreign : {std::string("{\"openai\": \"not encrypted\"}"), std::string("PK\x03\x04zipzipzip", 12),
                              std::string()}) {
    auto h = sealed::parse_header(foreign, sealed::Kind::vault, kSubject);
    REQUIRE_FALSE(h);
    CHECK(h.error().message.rfind("vault: not a tokfence file (bad magic): /h/vault.enc", 0) == 0);
  }
}

TEST_CASE("vault::sealed reports an unknown format version") {
  FastKdf fast;
  SecretString pass("p");
  std::string file = sealed_sample(pass);
  file[9] = 9;
  auto h = sealed::parse_header(file, sealed::Kind::vault, kSubject);
  REQUIRE_FALSE(h);
  CHECK(h.error().message ==
        "vault: unsupported format version 9 (this tokfence reads version 1): /h/vault.enc: upgrade tokfence");
}

TEST_CASE("vault::sealed tells a bundle from a vault file") {
  FastKdf fast;
  SecretString pass("p");
  auto bundle = sealed::seal(sealed::Kind::bundle, "{}", pass, nullptr);
  REQUIRE(bundle);
  auto h = sealed::parse_header(*bundle, sealed::Kind::vault, kSubject);
  REQUIRE_FALSE(h);
  CHECK(h.error().message.find("this is an export bundle, not a vault file") != std::string::npos);
}

TEST_CASE("vault::sealed refuses KDF parameters out of bounds before deriving anything") {
  FastKdf fast;
  SecretString pass("p");
  std::string file = sealed_sample(pass);
  std::string bad = file;
  bad[16] = 0x7f;  // m_cost ~ 2 TiB
  auto h = sealed::parse_header(bad, sealed::Kind::vault, kSubject);
  REQUIRE_FALSE(h);
  CHECK(h.error().message.rfind("vault: unsupported key derivation parameters", 0) == 0);
}

TEST_CASE("vault::sealed key cache derives once per salt") {
  FastKdf fast;
  SecretString pass("p");
  sealed::KeyCache cache;
  auto file = sealed::seal(sealed::Kind::vault, kPlain, pass, &cache);
  REQUIRE(file);
  auto h = sealed::parse_header(*file, sealed::Kind::vault, kSubject);
  REQUIRE(h);
  CHECK(cache.find(*h) != nullptr);
  // The cached key opens the file even with a wrong passphrase: the cache is per vault, and a
  // vault object holds one passphrase, so this is the proof that no second derivation happened.
  auto plain = sealed::open(*file, sealed::Kind::vault, SecretString("not used"), kSubject, &cache);
  REQUIRE(plain);
  CHECK(plain->view() == kPlain);
}
