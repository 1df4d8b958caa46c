// The vault file reader's parsers, on a file an attacker may have replaced: the sealed-file
// header (magic, version, KDF bounds, lengths) and the decrypted payload's JSON reader, which
// reads keys straight out of the decrypted buffer.
#include <string>

#include "vault/payload.hpp"
#include "vault/sealed_file.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::vault;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in = tokfence::fuzz::as_text(data, size);
  static const sealed::Subject subject{"vault", "/h/vault.enc", "check TOKFENCE_VAULT_PASSPHRASE"};
  for (auto kind : {sealed::Kind::vault, sealed::Kind::bundle}) {
    auto header = sealed::parse_header(in, kind, subject);
    if (header) {
      FUZZ_CHECK(header->kind == kind);
      FUZZ_CHECK(in.size() >= sealed::kHeaderSize);
    }
  }
  // Crash-freedom only: an error may name a provider (not secret), so "the message quotes no
  // input" is not an invariant here; that keys are never quoted is checked by the unit tests.
  auto entries = payload::parse(in);
  if (entries) (void)entries->size();
  return 0;
}
