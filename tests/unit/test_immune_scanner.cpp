// proxy/immune/scanner: every fragment of >= 16 bytes of a needle is found, wherever it sits in the
// text and however a stream is cut; 15 bytes, a provider prefix, example keys and ordinary coding
// traffic are not. A randomised comparison with a brute-force search covers the sampled-gram
// arithmetic (alignment, the extension at the text's and needle's ends, the prefix).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/decoys.hpp"
#include "proxy/immune/encoded.hpp"
#include "proxy/immune/scanner.hpp"

using namespace tokfence;
using namespace tokfence::immune;
using nlohmann::json;

namespace {

constexpr std::size_t W = SecretScanner::kWindow;

std::string random_of(std::mt19937_64& rng, std::string_view alphabet, std::size_t n) {
  std::string s(n, ' ');
  for (auto& c : s) c = alphabet[rng() % alphabet.size()];
  return s;
}

constexpr std::string_view kUrlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

// Vault-key-shaped values (what a user's real keys look like).
std::string anthropic_key(std::mt19937_64& rng) { return "sk-ant-api03-" + random_of(rng, kUrlSafe, 93) + "AA"; }
std::string openai_key(std::mt19937_64& rng) {
  return "sk-proj-" + random_of(rng, kUrlSafe, 74) + "T3BlbkFJ" + random_of(rng, kUrlSafe, 74);
}

// A chat request body around `content`, as an agent sends it.
std::string chat_body(const std::string& content) {
  return json{{"model", "gpt-5-codex"},
              {"stream", true},
              {"messages", {{{"role", "system"}, {"content", "You are a coding agent."}}, {{"role", "user"}, {"content", content}}}}}
      .dump();
}

// What a coding session sends: prompts and tool output with exec, sudo, rm -rf, base64 blobs,
// hashes, example keys, and this repository's own source.
std::string coding_traffic(std::mt19937_64& rng) {
  std::string t;
  t += "Please run `sudo apt-get install -y build-essential` and then `rm -rf build && cmake -S . -B build`.\n";
  t += "exec(\"ls -la\"); os.system('rm -rf /tmp/cache'); subprocess.run(['sudo', 'systemctl', 'restart', 'nginx'])\n";
  t += "eval $(ssh-agent) && chmod 600 ~/.ssh/id_ed25519 && curl -fsSL https://example.com/install.sh | sudo bash\n";
  // Example keys from docs and tutorials (put together here, so the tree holds no key-shaped literal).
  t += "export OPENAI_API_KEY=sk-proj-" + std::string(64, 'x') + "\n";
  t += "OPENAI_API_KEY=sk-proj-" + std::string(60, 'X') + "\n";
  t += "ANTHROPIC_API_KEY=sk-ant-api03-" + std::string(76, 'x') + "\n";
  t += "ANTHROPIC_API_KEY=sk-ant-api03-" + random_of(rng, kUrlSafe, 93) + "AA\n";
  t += "OPENAI_API_KEY=sk-proj-" + random_of(rng, kUrlSafe, 74) + "T3BlbkFJ" + random_of(rng, kUrlSafe, 74) + "\n";
  t += "[default]\naws_access_key_id = AKIA" "IOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/" "bPxRfiCYEXAMPLEKEY\n";
  t += "GH_TOKEN=ghp_" + std::string(36, 'x') + " token: ghp_" "16C7e42F292c6912E7710c838347Ae178B4a\n";
  t += "AKIA" + random_of(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16) + " " + random_of(rng, kAlnum, 40) + "\n";
  t += "ghp_" + random_of(rng, kAlnum, 36) + " gho_" + random_of(rng, kAlnum, 36) + "\n";
  t += "password 12345678-1234-4234-8234-123456789abc\n";
  for (int i = 0; i < 20; ++i) t += "sha256: " + random_of(rng, "0123456789abcdef", 64) + "\n";
  t += "data:image/png;base64," +
       random_of(rng, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 4000) + "==\n";
  t += std::string(300, 'A') + std::string(300, '0') + std::string(300, '-') + std::string(300, 'x') + "\n";
  namespace fs = std::filesystem;
  const fs::path root = fs::path(TOKFENCE_TEMPLATES_DIR).parent_path();
  for (const char* file : {"proxy/http/server.cpp", "proxy/http/forward_proxy.hpp", "proxy/http/inspected_tunnel.hpp",
                           "proxy/http/http1.cpp", "core/file.cpp", "vault/sealed_file.cpp", "proxy/immune/scanner.cpp",
                           "core/decoys.cpp", "README.md"}) {
    std::ifstream in(root / file, std::ios::binary);
    t += std::string(std::istreambuf_iterator<char>(in), {});
  }
  return t;
}

std::vector<Needle> decoy_needles(const Decoys& d, std::uint32_t owner) {
  std::vector<Needle> out;
  for (const auto& v : d.values) out.push_back({v, NeedleKind::decoy, owner});
  return out;
}

// Brute force: does `text` contain a usable 16-byte window of `needle`?
std::size_t prefix_end(std::string_view v) {
  std::size_t from = 0;
  for (std::size_t i = 0; i < std::min<std::size_t>(v.size(), 20); ++i)
    if (v[i] == '-' || v[i] == '_') from = i + 1;
  return from;
}
bool naive_contains(std::string_view text, std::string_view needle) {
  const std::size_t from = prefix_end(needle);
  if (needle.size() < W || needle.size() - from < W) return false;
  for (std::size_t i = from; i + W <= needle.size(); ++i)
    if (text.find(needle.substr(i, W)) != std::string_view::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("immune::SecretScanner finds every decoy value in a JSON request body, with its owner") {
  const Decoys a = make_decoys(), b = make_decoys();
  auto needles = decoy_needles(a, 1);
  for (auto& n : decoy_needles(b, 2)) needles.push_back(std::move(n));
  const SecretScanner scanner(std::move(needles));
  REQUIRE(scanner.size() == 14);
  std::mt19937_64 rng(1);
  const std::string traffic = coding_traffic(rng);
  for (const auto& [decoys, owner] : {std::pair{&a, 1u}, std::pair{&b, 2u}}) {
    for (const auto& v : decoys->values) {
      const std::string body = chat_body(traffic.substr(0, 5000) + "\n$ cat ~/.aws/credentials\n" + v + "\n" + traffic.substr(5000, 5000));
      CHECK(scanner.find(body) == Hit{NeedleKind::decoy, owner});
    }
    // A whole decoy file pasted into a prompt.
    for (const auto& f : decoys->files) CHECK(scanner.find(chat_body(f.content)) == Hit{NeedleKind::decoy, owner});
  }
}

TEST_CASE("immune::SecretScanner: a 16-byte fragment is found at any offset and alignment, 15 bytes never") {
  std::mt19937_64 rng(2);
  const std::string key = openai_key(rng);
  const SecretScanner scanner({{key, NeedleKind::vault_key, 7}});
  // Padding from characters a key never has, so it cannot lengthen a fragment by chance.
  const std::string pad = random_of(rng, " .,;:(){}[]\"'", 40);
  const std::size_t from = prefix_end(key);  // "sk-proj-", or further if a '-' or '_' follows within 20 bytes
  REQUIRE(from >= 8);
  for (std::size_t at = from; at + W <= key.size(); ++at) {
    for (std::size_t shift = 0; shift < 16; ++shift) {
      const std::string before = pad.substr(0, shift);
      CHECK(scanner.find(before + key.substr(at, W) + pad) == Hit{NeedleKind::vault_key, 7});
      CHECK(scanner.find(before + key.substr(at, W)) == Hit{NeedleKind::vault_key, 7});  // at the very end
      CHECK_FALSE(scanner.find(before + key.substr(at, W - 1) + pad));
      CHECK_FALSE(scanner.find(before + key.substr(at, W - 1) + "|" + key.substr(at + W - 1, W - 1) + pad));
      std::string flipped = key.substr(at, W);
      flipped[W / 2] = flipped[W / 2] == '~' ? '!' : '~';
      CHECK_FALSE(scanner.find(before + flipped + pad));
    }
  }
  CHECK(scanner.find(key) == Hit{NeedleKind::vault_key, 7});
}

TEST_CASE("immune::SecretScanner: a window inside a provider prefix is not used, so an example key does not match") {
  std::mt19937_64 rng(3);
  std::string key = anthropic_key(rng);
  for (std::size_t i = 13; i < 20; ++i)  // no separator after the prefix: it is exactly "sk-ant-api03-"
    if (key[i] == '-' || key[i] == '_') key[i] = 'Q';
  const SecretScanner scanner({{key, NeedleKind::vault_key, 0}});
  // The real key's own first bytes, from inside the prefix: not a hit.
  for (std::size_t at = 0; at < 13; ++at) CHECK_FALSE(scanner.find(" " + key.substr(at, W) + " "));
  CHECK_FALSE(scanner.find("ANTHROPIC_API_KEY=" + key.substr(0, 13 + W - 1) + "\"}"));
  CHECK_FALSE(scanner.find("ANTHROPIC_API_KEY=sk-ant-api03-" + anthropic_key(rng).substr(13)));
  // The first window past the prefix is.
  CHECK(scanner.find(" " + key.substr(13, W) + " "));
  CHECK(scanner.find("ANTHROPIC_API_KEY=" + key.substr(0, 13 + W)));
}

TEST_CASE("immune::SecretScanner: short needles are ignored, an empty scanner finds nothing") {
  const SecretScanner none({});
  CHECK(none.empty());
  CHECK_FALSE(none.find("anything at all, long enough to hold a window"));
  const SecretScanner short_ones({{"0123456789abcde", NeedleKind::decoy, 0},             // 15 bytes
                                  {"sk-proj-0123456789abcde", NeedleKind::vault_key, 0},  // 15 after the prefix
                                  {"", NeedleKind::decoy, 0}});
  CHECK(short_ones.empty());
  CHECK_FALSE(short_ones.find("0123456789abcde sk-proj-0123456789abcde"));
  const SecretScanner one({{"0123456789abcdef", NeedleKind::decoy, 3}, {"short", NeedleKind::decoy, 4}});
  CHECK(one.size() == 1);
  CHECK(one.find("xx0123456789abcdefxx") == Hit{NeedleKind::decoy, 3});
  CHECK_FALSE(one.find("0123456789abcde"));
  CHECK_FALSE(one.find(""));
}

TEST_CASE("immune::SecretScanner: ordinary coding traffic gives no hit against 1,000 needles") {
  std::mt19937_64 rng(4);
  std::vector<Needle> needles;
  for (std::uint32_t s = 0; s < 140; ++s)
    for (auto& n : decoy_needles(make_decoys(), s)) needles.push_back(std::move(n));
  for (std::uint32_t p = 0; p < 20; ++p)
    needles.push_back({p % 2 ? anthropic_key(rng) : openai_key(rng), NeedleKind::vault_key, p});
  const SecretScanner scanner(std::move(needles));
  REQUIRE(scanner.size() == 1000);
  const std::string traffic = coding_traffic(rng);
  REQUIRE(traffic.size() > 100000);
  CHECK_FALSE(scanner.find(traffic));
  CHECK_FALSE(scanner.find(chat_body(traffic)));
  // Another session's decoys are not this one's.
  for (int round = 0; round < 20; ++round) CHECK_FALSE(scanner.find(decoys_json(make_decoys()).dump()));
}

TEST_CASE("immune::StreamScan finds a needle split across chunks at every offset") {
  const Decoys d = make_decoys();
  const std::string value = d.values[4];  // the OpenAI-shaped one, 164 bytes
  const SecretScanner scanner(decoy_needles(d, 9));
  std::mt19937_64 rng(5);
  const std::string body = chat_body(coding_traffic(rng).substr(0, 3000) + value + "\"}]}");
  const std::size_t at = body.find(value);
  REQUIRE(at != std::string::npos);
  for (std::size_t cut = at; cut <= at + value.size(); ++cut) {
    StreamScan s;
    std::optional<Hit> hit = s.feed(scanner, std::string_view(body).substr(0, cut));
    if (!hit) hit = s.feed(scanner, std::string_view(body).substr(cut));
    CHECK(hit == Hit{NeedleKind::decoy, 9});
  }
  // Only 16 bytes of it, cut at each place, and fed in pieces of every size from 1 byte.
  const std::string fragment = "data: {\"delta\":\"" + value.substr(100, W) + "\"}\n\n";
  for (std::size_t piece = 1; piece <= fragment.size(); ++piece) {
    StreamScan s;
    bool found = false;
    for (std::size_t i = 0; i < fragment.size(); i += piece)
      found = s.feed(scanner, std::string_view(fragment).substr(i, piece)).has_value() || found;
    CHECK(found);
  }
  // 15 bytes in one-byte pieces: nothing.
  StreamScan s;
  const std::string short_fragment = "[" + value.substr(100, W - 1) + "]";
  for (char c : short_fragment) CHECK_FALSE(s.feed(scanner, std::string_view(&c, 1)));
  CHECK_FALSE(s.feed(scanner, ""));
}

TEST_CASE("immune::SecretScanner and StreamScan agree with a brute-force search on random texts") {
  std::mt19937_64 rng(6);
  int hits = 0, misses = 0;
  for (int round = 0; round < 3000; ++round) {
    // Needles over a tiny alphabet (with an occasional separator), so texts made of their pieces
    // hold many near-misses: runs of 10-20 matching bytes, next to other needles' bytes.
    std::vector<std::string> values;
    std::vector<Needle> needles;
    const int count = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < count; ++i) {
      std::string v = random_of(rng, "abc", 8 + rng() % 40);
      if (rng() % 3 == 0) v[rng() % v.size()] = "-_"[rng() % 2];
      values.push_back(v);
      needles.push_back({v, i % 2 ? NeedleKind::vault_key : NeedleKind::decoy, static_cast<std::uint32_t>(i)});
    }
    const SecretScanner scanner(std::move(needles));
    std::string text;
    const int parts = static_cast<int>(rng() % 6);
    for (int p = 0; p < parts; ++p) {
      const std::string& v = values[rng() % values.size()];
      const std::size_t at = rng() % v.size();
      text += v.substr(at, 10 + rng() % 12) + random_of(rng, "abc", rng() % 4);
    }
    bool expected = false;
    for (const auto& v : values) expected = expected || naive_contains(text, v);
    const auto found = scanner.find(text);
    REQUIRE(found.has_value() == expected);
    if (found) REQUIRE(naive_contains(text, values[found->owner]));
    (expected ? hits : misses)++;

    StreamScan s;
    bool streamed = false;
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t piece = 1 + rng() % 20;
      streamed = s.feed(scanner, std::string_view(text).substr(i, piece)).has_value() || streamed;
      i += piece;
    }
    REQUIRE(streamed == expected);
  }
  // Both outcomes were exercised many times.
  CHECK(hits > 300);
  CHECK(misses > 300);
}

namespace {

std::string base64_of(std::string_view in, bool url_safe = false) {
  const std::string_view digits = url_safe ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                                           : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const auto v = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16 |
                   static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8 |
                   static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out += digits[v >> k & 63];
  }
  if (i < in.size()) {  // one or two bytes left: padded
    std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    out += digits[v >> 18 & 63];
    out += digits[v >> 12 & 63];
    out += i + 1 < in.size() ? digits[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

std::string hex_of(std::string_view in, bool upper = false) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (unsigned char c : in) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

}  // namespace

TEST_CASE("immune::find_encoded finds a needle in base64 (both alphabets, any alignment) and in hex") {
  std::mt19937_64 rng(7);
  const std::string key = openai_key(rng);
  const std::string decoy = "AKIA" + random_of(rng, kAlnum, 16);
  const std::string key_copy = key, decoy_copy = decoy;
  SecretScanner scanner({{std::string(key_copy), NeedleKind::vault_key, 1}, {std::string(decoy_copy), NeedleKind::decoy, 2}});
  const std::string traffic = coding_traffic(rng);
  // The plain scan misses every one of these; find_encoded finds each, whatever comes before.
  for (const std::string before : {"", "x", "xy", "xyz", "blob: "}) {
    for (const std::string& wrapped : {before + base64_of("creds " + decoy + " end"), before + base64_of("k=" + key, true),
                                       before + hex_of("id:" + decoy), before + hex_of(decoy, true)}) {
      INFO(wrapped);
      const std::string body = chat_body(traffic.substr(0, 2000) + " " + wrapped + " thanks");
      CHECK_FALSE(scanner.find(body));
      auto hit = find_encoded(scanner, body);
      REQUIRE(hit);
      CHECK(hit->owner == (wrapped.find(base64_of("k=" + key, true)) != std::string::npos ? 1u : 2u));
    }
  }
  // A run glued to other base64 characters at any offset: found at one of the four alignments.
  for (std::size_t pad = 0; pad < 8; ++pad)
    CHECK(find_encoded(scanner, std::string(pad, 'Q') + base64_of("::" + decoy + "::")));
  // Too short to hold a window once decoded: nothing (and no read past the text).
  CHECK_FALSE(find_encoded(scanner, base64_of(decoy.substr(0, 15))));
  CHECK_FALSE(find_encoded(scanner, hex_of(decoy.substr(0, 15))));
  CHECK_FALSE(find_encoded(scanner, ""));
  CHECK_FALSE(find_encoded(scanner, "===="));
}

TEST_CASE("immune::find_encoded: ordinary coding traffic with base64 blobs and hashes gives no hit") {
  std::mt19937_64 rng(8);
  std::vector<Needle> needles;
  for (int i = 0; i < 200; ++i) needles.push_back({openai_key(rng), NeedleKind::vault_key, static_cast<std::uint32_t>(i)});
  SecretScanner scanner(std::move(needles));
  const std::string traffic = coding_traffic(rng);
  CHECK_FALSE(find_encoded(scanner, traffic));
  CHECK_FALSE(find_encoded(scanner, chat_body(traffic)));
  CHECK_FALSE(find_encoded(scanner, base64_of(traffic)));
  CHECK_FALSE(find_encoded(scanner, hex_of(traffic.substr(0, 4000))));
  // An empty scanner never looks.
  CHECK_FALSE(find_encoded(SecretScanner({}), base64_of(traffic)));
}
