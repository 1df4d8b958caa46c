#include "core/decoys.hpp"

#include <openssl/rand.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string_view>

namespace tokfence {
namespace {

constexpr std::string_view kUpperBase32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr std::string_view kAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kUrlSafe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kLower = "abcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kDigits = "0123456789";
constexpr std::string_view kHex = "0123456789abcdef";
constexpr std::size_t kMinValue = 20;

// `n` characters of `alphabet`, uniformly: bytes from RAND_bytes, those at or above the largest
// multiple of the alphabet's size rejected (no modulo bias).
std::string random_from(std::string_view alphabet, std::size_t n) {
  const unsigned limit = 256 - 256 % alphabet.size();
  std::string out;
  out.reserve(n);
  std::array<unsigned char, 64> bytes;
  while (out.size() < n) {
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) std::abort();  // no CSPRNG
    for (unsigned char b : bytes) {
      if (b >= limit) continue;
      out += alphabet[b % alphabet.size()];
      if (out.size() == n) break;
    }
  }
  return out;
}

std::uint32_t crc32(std::string_view data) {
  std::uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// GitHub's token format (github.blog, 2021-04-05): prefix, 30 random base62 characters, then the
// CRC32 of those 30 in base62 (0-9A-Za-z), left-padded with '0' to 6 characters. A scanner that
// checks the checksum takes the decoy for a real token.
std::string github_token(std::string_view prefix) {
  static constexpr std::string_view kBase62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  std::string body = random_from(kAlnum, 30);
  std::uint32_t sum = crc32(body);
  std::string check(6, '0');
  for (std::size_t i = 6; i-- > 0 && sum != 0; sum /= 62) check[i] = kBase62[sum % 62];
  return std::string(prefix) + body + check;
}

std::string uuid4() {
  std::string u = random_from(kHex, 32);
  u[12] = '4';
  u[16] = "89ab"[static_cast<unsigned char>(u[16]) % 4];
  return u.substr(0, 8) + "-" + u.substr(8, 4) + "-" + u.substr(12, 4) + "-" + u.substr(16, 4) + "-" + u.substr(20);
}

bool value_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool env_name(std::string_view name) {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  return true;
}

// Why a decoy path would be unsafe to plant under HOME, or "" when it is fine.
std::string path_problem(std::string_view path) {
  if (path.empty()) return "is empty";
  if (path.find('\0') != std::string_view::npos) return "contains a NUL byte";
  if (path.front() == '/') return "must be relative to HOME";
  for (std::size_t at = 0; at <= path.size();) {
    std::size_t end = path.find('/', at);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(at, end - at);
    if (part.empty()) return "has an empty component";
    if (part == "." || part == "..") return "has a '" + std::string(part) + "' component";
    at = end + 1;
  }
  return "";
}

std::string type_name(const nlohmann::json& j) { return j.type_name(); }

// ": TEXT" for a message, or "" when TEXT is empty or not printable ASCII (so a message never
// carries control bytes).
std::string shown(std::string_view text) {
  if (text.empty()) return "";
  for (unsigned char c : text)
    if (c < 0x20 || c >= 0x7f) return "";
  return ": " + std::string(text);
}

}  // namespace

Decoys make_decoys() {
  const std::string aws_id = "AKIA" + random_from(kUpperBase32, 16);
  const std::string aws_secret = random_from(kAlnum, 40);
  const std::string gh_oauth = github_token("gho_");
  const std::string gh_pat = github_token("ghp_");
  // The shapes secret scanners (e.g. gitleaks) look for: OpenAI's project keys carry "T3BlbkFJ"
  // (base64 of "OpenAI") between two 74-character halves; Anthropic's end in "AA".
  const std::string openai = "sk-proj-" + random_from(kUrlSafe, 74) + "T3BlbkFJ" + random_from(kUrlSafe, 74);
  const std::string anthropic = "sk-ant-api03-" + random_from(kUrlSafe, 93) + "AA";
  const std::string heroku = uuid4();
  const std::string login = random_from(kLower, 7) + random_from(kDigits, 2);

  Decoys d;
  d.files.push_back({".aws/credentials",
                     "[default]\naws_access_key_id = " + aws_id + "\naws_secret_access_key = " + aws_secret + "\n"});
  // What gh 2.40+ writes when no keyring is available (the usual case in a container).
  d.files.push_back({".config/gh/hosts.yml", "github.com:\n    users:\n        " + login + ":\n            oauth_token: " +
                                                 gh_oauth + "\n    git_protocol: https\n    oauth_token: " + gh_oauth +
                                                 "\n    user: " + login + "\n"});
  d.files.push_back({".env", "OPENAI_API_KEY=" + openai + "\nANTHROPIC_API_KEY=" + anthropic + "\n"});
  const std::string email = login + "@users.noreply.github.com";
  d.files.push_back({".netrc", "machine api.heroku.com\n  login " + email + "\n  password " + heroku +
                                   "\nmachine git.heroku.com\n  login " + email + "\n  password " + heroku + "\n"});
  // One decoy variable only, with a value in no file: a harmless agent that prints its
  // environment while debugging (env, printenv) sends it to the model, so a variable's value seen
  // outbound is only suspicious (YELLOW), while a file's is theft (RED). AWS_* variables would
  // also make every AWS tool in the fence use the decoys instead of failing cleanly.
  d.env = {{"GH_TOKEN", gh_pat}};
  d.values = {aws_id, aws_secret, gh_oauth, gh_pat, openai, anthropic, heroku};
  return d;
}

nlohmann::json decoys_json(const Decoys& decoys) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : decoys.files) files.push_back({{"path", f.path}, {"content", f.content}});
  nlohmann::json env = nlohmann::json::object();
  for (const auto& [name, value] : decoys.env) env[name] = value;
  return {{"files", std::move(files)}, {"env", std::move(env)}, {"values", decoys.values}};
}

Result<Decoys> decoys_from_json(const nlohmann::json& json) {
  const std::string p = "decoys: ";
  if (!json.is_object()) return fail(p + "not a JSON object: " + type_name(json));
  for (const auto& [key, _] : json.items())
    if (key != "files" && key != "env" && key != "values") return fail(p + "unknown key: " + key);
  for (const char* key : {"files", "env", "values"})
    if (!json.contains(key)) return fail(p + "missing key: " + key);

  Decoys d;
  const auto& files = json["files"];
  if (!files.is_array()) return fail(p + "files: not an array: " + type_name(files));
  std::set<std::string> paths;
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto& f = files[i];
    const std::string at = p + "files[" + std::to_string(i) + "]";
    if (!f.is_object()) return fail(at + ": not an object: " + type_name(f));
    for (const auto& [key, _] : f.items())
      if (key != "path" && key != "content") return fail(at + ": unknown key: " + key);
    if (!f.contains("path") || !f["path"].is_string()) return fail(at + ".path: missing or not a string");
    if (!f.contains("content") || !f["content"].is_string()) return fail(at + ".content: missing or not a string");
    std::string path = f["path"].get<std::string>();
    if (std::string why = path_problem(path); !why.empty()) return fail(at + ".path: " + why + shown(path));
    if (!paths.insert(path).second) return fail(at + ".path: a second file at the same path" + shown(path));
    d.files.push_back({std::move(path), f["content"].get<std::string>()});
  }

  const auto& env = json["env"];
  if (!env.is_object()) return fail(p + "env: not an object: " + type_name(env));
  for (const auto& [name, value] : env.items()) {
    if (!env_name(name)) return fail(p + "env: not a variable name (want [A-Za-z_][A-Za-z0-9_]*)" + shown(name));
    if (!value.is_string()) return fail(p + "env." + name + ": not a string: " + type_name(value));
    std::string v = value.get<std::string>();
    if (v.find('\0') != std::string::npos) return fail(p + "env." + name + ": contains a NUL byte");
    d.env.emplace_back(name, std::move(v));
  }

  const auto& values = json["values"];
  if (!values.is_array()) return fail(p + "values: not an array: " + type_name(values));
  if (values.empty()) return fail(p + "values: empty (a decoy set with nothing to look for)");
  for (std::size_t i = 0; i < values.size(); ++i) {
    const std::string at = p + "values[" + std::to_string(i) + "]";
    if (!values[i].is_string()) return fail(at + ": not a string: " + type_name(values[i]));
    std::string v = values[i].get<std::string>();
    if (v.size() < kMinValue)
      return fail(at + ": too short: " + std::to_string(v.size()) + " characters (want at least " +
                  std::to_string(kMinValue) + ")");
    for (char c : v)
      if (!value_char(c)) return fail(at + ": a character JSON may escape (want only A-Z a-z 0-9 - _)");
    d.values.push_back(std::move(v));
  }
  return d;
}

}  // namespace tokfence
