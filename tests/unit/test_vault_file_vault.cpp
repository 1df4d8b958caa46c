// FileVault and export bundles against real files in a private temporary home. KDF costs are
// lowered through the sealed-file test hook.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "vault/sealed_file.hpp"
#include "vault/vault.hpp"

using namespace tokfence;
using namespace tokfence::vault;
namespace fs = std::filesystem;

namespace {

struct TempHome {
  fs::path root;
  TempHome() {
    std::string tmpl = (fs::temp_directory_path() / "tokfence-vault-unit-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    root = fs::path(tmpl) / "home";
    sealed::testing::set_write_kdf(sealed::KdfParams{1, 64, 1});
  }
  ~TempHome() {
    sealed::testing::set_write_kdf(std::nullopt);
    std::error_code ec;
    fs::remove_all(root.parent_path(), ec);
  }
  Home home() const { return Home(root); }
};

PassphraseSource fixed(std::string pass, int* calls = nullptr) {
  return [pass, calls](const std::string&, bool) -> Result<SecretString> {
    if (calls) ++*calls;
    return SecretString(pass);
  };
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("vault::FileVault adds, lists, rotates and removes keys") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  CHECK(v->backend_name() == "file");
  auto empty = v->list();
  REQUIRE(empty);
  CHECK(empty->empty());
  CHECK_FALSE(fs::exists(t.home().vault_file()));  // listing creates nothing

  REQUIRE(v->put("openai", SecretString("sk-first-key-0001"), Overwrite::no, {}));
  REQUIRE(v->put("groq", SecretString("gsk-second-key-02"), Overwrite::no, {}));

  // A fresh object (another process, in effect) reads what was written.
  auto v2 = open_file_vault(t.home(), fixed("pw"));
  auto got = v2->get("openai");
  REQUIRE(got);
  REQUIRE(got->has_value());
  CHECK((*got)->reveal() == "sk-first-key-0001");
  auto infos = v2->list();
  REQUIRE(infos);
  REQUIRE(infos->size() == 2);
  CHECK((*infos)[0].provider == "groq");
  CHECK((*infos)[1].fingerprint == "...0001");
  CHECK((*infos)[1].added_at > 0);
  CHECK((*infos)[1].rotated_at == 0);

  REQUIRE(v2->put("openai", SecretString("sk-rotated-key-9999"), Overwrite::existing_only, {}));
  auto after = v->get("openai");
  REQUIRE(after);
  CHECK((*after)->reveal() == "sk-rotated-key-9999");
  auto rotated = v->list();
  REQUIRE(rotated);
  CHECK((*rotated)[1].rotated_at > 0);

  REQUIRE(v->remove("groq"));
  auto all = v2->get_all();
  REQUIRE(all);
  REQUIRE(all->size() == 1);
  CHECK(all->front().first == "openai");
}

TEST_CASE("vault::FileVault writes vault.enc with mode 0600 in a 0700 home") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  REQUIRE(v->put("openai", SecretString("sk-some-key-1234"), Overwrite::no, {}));
  struct stat st {};
  REQUIRE(::stat(t.home().vault_file().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(t.root.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(slurp(t.home().vault_file()).find("sk-some-key-1234") == std::string::npos);
}

TEST_CASE("vault::FileVault rejects a wrong passphrase and leaves the file as it was") {
  TempHome t;
  REQUIRE(open_file_vault(t.home(), fixed("right"))->put("openai", SecretString("sk-key-abcdefgh"), Overwrite::no, {}));
  std::string before = slurp(t.home().vault_file());
  auto v = open_file_vault(t.home(), fixed("wrong"));
  auto r = v->put("groq", SecretString("gsk-other"), Overwrite::no, {});
  REQUIRE_FALSE(r);
  CHECK(r.error().message.rfind("vault: wrong passphrase: " + t.home().vault_file().string(), 0) == 0);
  auto l = v->list();
  REQUIRE_FALSE(l);
  CHECK(slurp(t.home().vault_file()) == before);
}

TEST_CASE("vault::FileVault refuses to add over an existing key, naming vault rotate") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  REQUIRE(v->put("openai", SecretString("sk-key-one"), Overwrite::no, {}));
  auto r = v->put("openai", SecretString("sk-key-two"), Overwrite::no, {});
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "vault: provider 'openai' already has a key: replace it with 'tokfence vault rotate openai -'");
  CHECK(r.error().message.find("sk-key") == std::string::npos);
}

TEST_CASE("vault::FileVault reports a provider not in the vault without asking for a passphrase") {
  TempHome t;
  int calls = 0;
  auto v = open_file_vault(t.home(), fixed("pw", &calls));
  auto r = v->remove("mistral");
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "vault: no key for provider 'mistral': see 'tokfence vault list'");
  auto rot = v->put("mistral", SecretString("k"), Overwrite::existing_only, {});
  REQUIRE_FALSE(rot);
  CHECK(rot.error().message == "vault: no key for provider 'mistral': add one with 'tokfence vault add mistral -'");
  CHECK(calls == 0);
  CHECK_FALSE(fs::exists(t.home().vault_file()));
}

TEST_CASE("vault::FileVault asks for the passphrase once per process, with confirmation only when creating") {
  TempHome t;
  std::vector<bool> confirms;
  PassphraseSource source = [&](const std::string& purpose, bool confirm) -> Result<SecretString> {
    CHECK(purpose == "vault");
    confirms.push_back(confirm);
    return SecretString("pw");
  };
  auto v = open_file_vault(t.home(), source);
  REQUIRE(v->put("openai", SecretString("sk-1"), Overwrite::no, {}));
  REQUIRE(v->put("groq", SecretString("gsk-2"), Overwrite::no, {}));
  REQUIRE(v->list());
  CHECK(confirms == std::vector<bool>{true});
  auto v2 = open_file_vault(t.home(), source);
  REQUIRE(v2->list());
  CHECK(confirms == std::vector<bool>{true, false});
}

TEST_CASE("vault::FileVault refuses invalid provider names and malformed keys") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  auto r = v->put("OpenAI", SecretString("sk-1"), Overwrite::no, {});
  REQUIRE_FALSE(r);
  CHECK(r.error().message == "provider name 'OpenAI': must match [a-z0-9][a-z0-9_-]{0,31}");
  auto k = v->put("openai", SecretString("two words"), Overwrite::no, {});
  REQUIRE_FALSE(k);
  CHECK(k.error().message.rfind("key: ", 0) == 0);
  CHECK_FALSE(fs::exists(t.home().vault_file()));
}

TEST_CASE("vault::FileVault merges records: added, replaced with force, skipped without") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  REQUIRE(v->put("openai", SecretString("sk-local"), Overwrite::no, {}));
  std::vector<KeyRecord> in;
  in.push_back(KeyRecord{"openai", SecretString("sk-imported"), 10, 0, {}});
  in.push_back(KeyRecord{"groq", SecretString("gsk-imported"), 20, 30, {}});

  auto skip = v->merge(in, Overwrite::no);
  REQUIRE(skip);
  REQUIRE(skip->size() == 2);
  CHECK((*skip)[0].outcome == MergeOutcome::skipped);
  CHECK((*skip)[1].outcome == MergeOutcome::added);
  CHECK((*v->get("openai"))->reveal() == "sk-local");
  auto groq = v->records();
  REQUIRE(groq);
  CHECK((*groq)[0].provider == "groq");
  CHECK((*groq)[0].added_at == 20);
  CHECK((*groq)[0].rotated_at == 30);

  auto force = v->merge(in, Overwrite::yes);
  REQUIRE(force);
  CHECK((*force)[0].outcome == MergeOutcome::replaced);
  CHECK((*force)[1].outcome == MergeOutcome::replaced);
  CHECK((*v->get("openai"))->reveal() == "sk-imported");
}

TEST_CASE("vault::FileVault stores a secret bound to hosts, rotating keeps the hosts unless new ones are given") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  const std::vector<std::string> hosts{"api.telegram.org", "uploads.example.org"};
  REQUIRE(v->put("openai", SecretString("provider-key-1"), Overwrite::no, {}));
  REQUIRE(v->put("telegram-bot", SecretString("bot-token-1"), Overwrite::no, hosts));

  auto v2 = open_file_vault(t.home(), fixed("pw"));
  auto infos = v2->list();
  REQUIRE(infos);
  REQUIRE(infos->size() == 2);
  CHECK((*infos)[0].provider == "openai");
  CHECK((*infos)[0].hosts.empty());
  CHECK((*infos)[1].hosts == hosts);
  auto records = v2->records();
  REQUIRE(records);
  CHECK((*records)[1].hosts == hosts);
  CHECK((*records)[1].key.reveal() == "bot-token-1");

  REQUIRE(v2->put("telegram-bot", SecretString("bot-token-2"), Overwrite::existing_only, {}));
  auto kept = v->list();
  REQUIRE(kept);
  CHECK((*kept)[1].hosts == hosts);
  CHECK((*kept)[1].rotated_at > 0);
  CHECK((*v->get("telegram-bot"))->reveal() == "bot-token-2");

  REQUIRE(v2->put("telegram-bot", SecretString("bot-token-3"), Overwrite::existing_only, {"api.telegram.org"}));
  auto replaced = v->list();
  REQUIRE(replaced);
  CHECK((*replaced)[1].hosts == std::vector<std::string>{"api.telegram.org"});
}

TEST_CASE("vault::FileVault keeps a path position with the hosts, and rotating without hosts keeps it") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  REQUIRE(v->put("telegram-bot", SecretString("bot-token-1"), Overwrite::no, {"api.telegram.org"}, true));
  REQUIRE(v->put("github", SecretString("gh-token-1"), Overwrite::no, {"api.github.com"}));
  auto no_hosts = v->put("openai", SecretString("provider-key"), Overwrite::no, {}, true);
  REQUIRE_FALSE(no_hosts);
  CHECK(no_hosts.error().message.find("--host") != std::string::npos);
  auto infos = open_file_vault(t.home(), fixed("pw"))->list();
  REQUIRE(infos);
  REQUIRE(infos->size() == 2);
  CHECK_FALSE((*infos)[0].in_path);  // github
  CHECK((*infos)[1].in_path);        // telegram-bot
  REQUIRE(v->put("telegram-bot", SecretString("bot-token-2"), Overwrite::existing_only, {}));
  CHECK((*v->records())[1].in_path);
  REQUIRE(v->put("telegram-bot", SecretString("bot-token-3"), Overwrite::existing_only, {"api.telegram.org"}));
  CHECK_FALSE((*v->records())[1].in_path);  // new hosts, no --in path: credential fields only
}

TEST_CASE("vault::FileVault refuses bad hosts and writes nothing") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  REQUIRE(v->put("telegram-bot", SecretString("bot-token-1"), Overwrite::no, {"api.telegram.org"}));
  const std::string before = slurp(t.home().vault_file());
  for (const std::vector<std::string>& bad :
       {std::vector<std::string>{"API.telegram.org"}, {"api.telegram.org:443"}, {"127.0.0.1"}, {"*."}, {"a..b"},
        {"api.telegram.org", "api.telegram.org"}, std::vector<std::string>(kMaxSecretHosts + 1, "a.example.org")}) {
    auto r = v->put("telegram-bot", SecretString("bot-token-2"), Overwrite::existing_only, bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.rfind("host", 0) == 0);
    auto add = v->put("other", SecretString("other-token"), Overwrite::no, bad);
    REQUIRE_FALSE(add);
  }
  CHECK(slurp(t.home().vault_file()) == before);
  std::vector<KeyRecord> in;
  in.push_back(KeyRecord{"imported", SecretString("imported-token"), 1, 0, {"Bad.Host"}});
  auto m = v->merge(in, Overwrite::yes);
  REQUIRE_FALSE(m);
  CHECK(m.error().message.rfind("import: 'imported': host 'Bad.Host': ", 0) == 0);
  CHECK(slurp(t.home().vault_file()) == before);
}

TEST_CASE("vault::FileVault merges hosts: an added or replaced record brings its own, even none") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  REQUIRE(v->put("bound", SecretString("local-bound"), Overwrite::no, {"api.example.com"}));
  std::vector<KeyRecord> in;
  in.push_back(KeyRecord{"bound", SecretString("imported-plain"), 1, 0, {}});
  in.push_back(KeyRecord{"fresh", SecretString("imported-bound"), 2, 0, {"uploads.example.net"}});
  REQUIRE(v->merge(in, Overwrite::no));
  auto skipped = v->records();
  REQUIRE(skipped);
  CHECK((*skipped)[0].hosts == std::vector<std::string>{"api.example.com"});
  CHECK((*skipped)[1].hosts == std::vector<std::string>{"uploads.example.net"});
  REQUIRE(v->merge(in, Overwrite::yes));
  auto forced = v->records();
  REQUIRE(forced);
  CHECK((*forced)[0].hosts.empty());
  CHECK((*forced)[0].key.reveal() == "imported-plain");
}

TEST_CASE("vault::bundle carries the hosts of bound secrets") {
  std::vector<KeyRecord> in;
  in.push_back(KeyRecord{"openai", SecretString("provider-key"), 1, 0, {}});
  in.push_back(KeyRecord{"telegram-bot", SecretString("bot-token"), 3, 4, {"api.telegram.org", "core.telegram.org"}});
  auto bytes = seal_bundle(in, SecretString("export-pw"));
  REQUIRE(bytes);
  auto out = open_bundle(*bytes, SecretString("export-pw"), "b.bin");
  REQUIRE(out);
  REQUIRE(out->size() == 2);
  CHECK((*out)[0].hosts.empty());
  CHECK((*out)[1].hosts == std::vector<std::string>{"api.telegram.org", "core.telegram.org"});
  in.push_back(KeyRecord{"bad", SecretString("bad-token"), 1, 0, {"a..b"}});
  CHECK_FALSE(seal_bundle(in, SecretString("export-pw")));
}

TEST_CASE("vault::bundle round-trips records under its own passphrase") {
  TempHome t;
  std::vector<KeyRecord> in;
  in.push_back(KeyRecord{"anthropic", SecretString("sk-ant-key-000"), 1, 2, {}});
  auto bytes = seal_bundle(in, SecretString("export-pw"));
  REQUIRE(bytes);
  CHECK(check_bundle_header(*bytes, "b.bin"));
  auto out = open_bundle(*bytes, SecretString("export-pw"), "b.bin");
  REQUIRE(out);
  REQUIRE(out->size() == 1);
  CHECK((*out)[0].provider == "anthropic");
  CHECK((*out)[0].key.reveal() == "sk-ant-key-000");
  CHECK((*out)[0].rotated_at == 2);
  auto wrong = open_bundle(*bytes, SecretString("vault-pw"), "b.bin");
  REQUIRE_FALSE(wrong);
  CHECK(wrong.error().message.rfind("export bundle: wrong passphrase: b.bin", 0) == 0);
}

TEST_CASE("vault::bundle and vault files are not interchangeable") {
  TempHome t;
  auto v = open_file_vault(t.home(), fixed("pw"));
  REQUIRE(v->put("openai", SecretString("sk-1"), Overwrite::no, {}));
  auto r = check_bundle_header(slurp(t.home().vault_file()), "vault.enc");
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("this is a vault file, not an export bundle") != std::string::npos);
}

TEST_CASE("vault::write_file_atomic replaces a file whole and leaves no temporary behind") {
  TempHome t;
  fs::create_directories(t.root);
  fs::path f = t.root / "out.bin";
  REQUIRE(write_file_atomic(f, "first", 0600));
  REQUIRE(write_file_atomic(f, "second", 0640));
  CHECK(slurp(f) == "second");
  struct stat st {};
  REQUIRE(::stat(f.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  int files = 0;
  for (const auto& e : fs::directory_iterator(t.root)) files += e.is_regular_file() ? 1 : 0;
  CHECK(files == 1);
  auto bad = write_file_atomic(t.root / "missing-dir" / "x", "y", 0600);
  REQUIRE_FALSE(bad);
  CHECK(bad.error().message.rfind("cannot write: ", 0) == 0);
}
