// core/decoys: the honeytokens look like the real thing (shapes, real file formats checked by real
// parsers), are unique per call, survive their JSON form, and a bad JSON shape is refused with a
// message that names the field.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <regex>
#include <set>

#include "core/decoys.hpp"
#include "tests/unit/skip.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const DecoyFile* file_at(const Decoys& d, std::string_view path) {
  for (const auto& f : d.files)
    if (f.path == path) return &f;
  return nullptr;
}

std::string env_of(const Decoys& d, std::string_view name) {
  for (const auto& [n, v] : d.env)
    if (n == name) return v;
  return "";
}

bool matches(const std::string& value, const char* pattern) { return std::regex_match(value, std::regex(pattern)); }

// The value of `key` in a "key = value" / "key: value" / "KEY=value" line of `content`.
std::string line_value(const std::string& content, const std::string& key, const std::string& sep) {
  auto at = content.find(key + sep);
  if (at == std::string::npos) return "";
  at += key.size() + sep.size();
  return content.substr(at, content.find('\n', at) - at);
}

using test::TempDir;

// Python's own parsers (configparser, PyYAML, python-dotenv, netrc) read a decoy file; what they
// parsed comes back as JSON, or "" when python3 or a module is missing.
const char* kParse = R"PY(
import json, sys
kind, path = sys.argv[1], sys.argv[2]
try:
    if kind == "ini":
        import configparser
        c = configparser.ConfigParser(); c.read(path)
        out = {s: dict(c[s]) for s in c.sections()}
    elif kind == "yaml":
        import yaml
        out = yaml.safe_load(open(path))
    elif kind == "dotenv":
        import dotenv
        out = dict(dotenv.dotenv_values(path))
    else:
        import netrc
        out = {h: list(v) for h, v in netrc.netrc(path).hosts.items()}
except ImportError:
    sys.exit(0)
print(json.dumps(out))
)PY";

std::string parse_with_python(const TempDir& dir, const std::string& kind, const std::string& content) {
  std::ofstream(dir.path / "parse.py") << kParse;
  std::ofstream(dir.path / kind) << content;
  std::string cmd = "python3 " + (dir.path / "parse.py").string() + " " + kind + " " + (dir.path / kind).string() +
                    " 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return "";
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  ::pclose(p);
  return out;
}

}  // namespace

TEST_CASE("core::decoys: every value is shaped like the credential it imitates") {
  const Decoys d = make_decoys();
  REQUIRE(d.values.size() == 7);
  for (const auto& v : d.values) {
    CHECK(v.size() >= 20);
    CHECK(matches(v, "[A-Za-z0-9_-]+"));  // nothing a JSON encoder escapes
  }
  const std::string aws_file = file_at(d, ".aws/credentials")->content;
  const std::string aws_id = line_value(aws_file, "aws_access_key_id", " = ");
  CHECK(matches(aws_id, "AKIA[A-Z2-7]{16}"));
  CHECK(matches(line_value(aws_file, "aws_secret_access_key", " = "), "[A-Za-z0-9]{40}"));
  REQUIRE(d.env.size() == 1);
  CHECK(matches(env_of(d, "GH_TOKEN"), "ghp_[A-Za-z0-9]{36}"));
  for (const auto& f : d.files) CHECK(f.content.find(env_of(d, "GH_TOKEN")) == std::string::npos);  // env-only
  const std::string dotenv = file_at(d, ".env")->content;
  CHECK(matches(line_value(dotenv, "OPENAI_API_KEY", "="), "sk-proj-[A-Za-z0-9_-]{74}T3BlbkFJ[A-Za-z0-9_-]{74}"));
  CHECK(matches(line_value(dotenv, "ANTHROPIC_API_KEY", "="), "sk-ant-api03-[A-Za-z0-9_-]{93}AA"));
  const std::string hosts = file_at(d, ".config/gh/hosts.yml")->content;
  CHECK(matches(line_value(hosts, "    oauth_token", ": "), "gho_[A-Za-z0-9]{36}"));
  CHECK(matches(line_value(file_at(d, ".netrc")->content, "  password", " "),
                "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"));

  // Every value is somewhere an attacker finds it, and everything planted is in `values`.
  for (const auto& v : d.values) {
    bool planted = false;
    for (const auto& f : d.files) planted = planted || f.content.find(v) != std::string::npos;
    for (const auto& [n, e] : d.env) planted = planted || e == v;
    CHECK(planted);
  }
  for (const auto& [n, e] : d.env) CHECK(std::find(d.values.begin(), d.values.end(), e) != d.values.end());
}

TEST_CASE("core::decoys: GitHub tokens carry a valid CRC32 checksum, as real ones do") {
  // The last 6 characters are the base62 (0-9A-Za-z) CRC32 of the 30 before them.
  auto crc32 = [](std::string_view s) {
    std::uint32_t c = 0xFFFFFFFFu;
    for (unsigned char ch : s) {
      c ^= ch;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return ~c;
  };
  const std::string base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  for (int round = 0; round < 20; ++round) {
    const std::string token = env_of(make_decoys(), "GH_TOKEN");
    std::uint64_t sum = 0;
    for (char c : token.substr(34)) sum = sum * 62 + base62.find(c);
    CHECK(sum == crc32(token.substr(4, 30)));
  }
  // A published test vector: crc32("123456789") is 0xCBF43926.
  CHECK(crc32("123456789") == 0xCBF43926u);
}

TEST_CASE("core::decoys: the files parse as their real formats (configparser, PyYAML, python-dotenv, netrc)") {
  const Decoys d = make_decoys();
  TempDir dir;
  const std::string ini = parse_with_python(dir, "ini", file_at(d, ".aws/credentials")->content);
  TOKFENCE_SKIP_UNLESS(!ini.empty(), "python3 with configparser, yaml, dotenv and netrc needed");
  const std::string yaml = parse_with_python(dir, "yaml", file_at(d, ".config/gh/hosts.yml")->content);
  const std::string dotenv = parse_with_python(dir, "dotenv", file_at(d, ".env")->content);
  const std::string netrc = parse_with_python(dir, "netrc", file_at(d, ".netrc")->content);
  TOKFENCE_SKIP_UNLESS(!yaml.empty() && !dotenv.empty() && !netrc.empty(),
                       "python3 with configparser, yaml, dotenv and netrc needed");

  const json aws = json::parse(ini);
  CHECK(matches(aws["default"]["aws_access_key_id"].get<std::string>(), "AKIA[A-Z2-7]{16}"));
  CHECK(matches(aws["default"]["aws_secret_access_key"].get<std::string>(), "[A-Za-z0-9]{40}"));

  const json gh = json::parse(yaml);
  const std::string token = gh["github.com"]["oauth_token"];
  const std::string user = gh["github.com"]["user"];
  CHECK(token.starts_with("gho_"));
  CHECK(gh["github.com"]["users"][user]["oauth_token"] == token);
  CHECK(gh["github.com"]["git_protocol"] == "https");

  const json env = json::parse(dotenv);
  CHECK(std::string(env["OPENAI_API_KEY"]).starts_with("sk-proj-"));
  CHECK(std::string(env["ANTHROPIC_API_KEY"]).starts_with("sk-ant-api03-"));

  const json hosts = json::parse(netrc);
  CHECK(hosts["api.heroku.com"][0] == user + "@users.noreply.github.com");
  CHECK(hosts["api.heroku.com"][2] == hosts["git.heroku.com"][2]);
  CHECK(std::find(d.values.begin(), d.values.end(), std::string(hosts["api.heroku.com"][2])) != d.values.end());
}

TEST_CASE("core::decoys: two sets share no value") {
  std::set<std::string> seen;
  for (int round = 0; round < 50; ++round)
    for (const auto& v : make_decoys().values) CHECK(seen.insert(v).second);
  CHECK(seen.size() == 50 * 7);
}

TEST_CASE("core::decoys: the JSON form round-trips") {
  const Decoys d = make_decoys();
  const json j = decoys_json(d);
  CHECK(j["env"]["GH_TOKEN"] == env_of(d, "GH_TOKEN"));
  CHECK(j["files"][0]["path"] == ".aws/credentials");
  auto back = decoys_from_json(json::parse(j.dump()));
  REQUIRE(back.has_value());
  REQUIRE(back->files.size() == d.files.size());
  for (std::size_t i = 0; i < d.files.size(); ++i) {
    CHECK(back->files[i].path == d.files[i].path);
    CHECK(back->files[i].content == d.files[i].content);
  }
  CHECK(back->values == d.values);
  auto sorted = [](auto env) {
    std::sort(env.begin(), env.end());
    return env;
  };
  CHECK(sorted(back->env) == sorted(d.env));
}

TEST_CASE("core::decoys: decoys_from_json refuses bad shapes, naming the field") {
  const json good = decoys_json(make_decoys());
  auto error_of = [](const json& j) -> std::string {
    auto r = decoys_from_json(j);
    return r ? "(accepted)" : r.error().message;
  };
  auto with = [&](const std::function<void(json&)>& change) {
    json j = good;
    change(j);
    return j;
  };
  CHECK(error_of(good) == "(accepted)");
  CHECK(error_of(json::array()) == "decoys: not a JSON object: array");
  CHECK(error_of(with([](json& j) { j["extra"] = 1; })) == "decoys: unknown key: extra");
  CHECK(error_of(with([](json& j) { j.erase("values"); })) == "decoys: missing key: values");
  CHECK(error_of(with([](json& j) { j["files"] = json::object(); })) == "decoys: files: not an array: object");
  CHECK(error_of(with([](json& j) { j["files"][1] = "x"; })) == "decoys: files[1]: not an object: string");
  CHECK(error_of(with([](json& j) { j["files"][0]["mode"] = 384; })) == "decoys: files[0]: unknown key: mode");
  CHECK(error_of(with([](json& j) { j["files"][0].erase("path"); })) == "decoys: files[0].path: missing or not a string");
  CHECK(error_of(with([](json& j) { j["files"][0]["content"] = 5; })) ==
        "decoys: files[0].content: missing or not a string");
  CHECK(error_of(with([](json& j) { j["files"][2]["path"] = "/etc/passwd"; })) ==
        "decoys: files[2].path: must be relative to HOME: /etc/passwd");
  CHECK(error_of(with([](json& j) { j["files"][0]["path"] = ".aws/../../.bashrc"; })) ==
        "decoys: files[0].path: has a '..' component: .aws/../../.bashrc");
  CHECK(error_of(with([](json& j) { j["files"][0]["path"] = ".."; })) == "decoys: files[0].path: has a '..' component: ..");
  CHECK(error_of(with([](json& j) { j["files"][0]["path"] = "./.env"; })) ==
        "decoys: files[0].path: has a '.' component: ./.env");
  CHECK(error_of(with([](json& j) { j["files"][0]["path"] = ".aws//credentials"; })) ==
        "decoys: files[0].path: has an empty component: .aws//credentials");
  CHECK(error_of(with([](json& j) { j["files"][0]["path"] = ".aws/"; })) ==
        "decoys: files[0].path: has an empty component: .aws/");
  CHECK(error_of(with([](json& j) { j["files"][0]["path"] = ""; })) == "decoys: files[0].path: is empty");
  CHECK(error_of(with([](json& j) { j["files"][0]["path"] = std::string(".env\0x", 6); })) ==
        "decoys: files[0].path: contains a NUL byte");
  CHECK(error_of(with([](json& j) { j["files"][1]["path"] = ".aws/credentials"; })) ==
        "decoys: files[1].path: a second file at the same path: .aws/credentials");
  CHECK(error_of(with([](json& j) { j["env"] = json::array(); })) == "decoys: env: not an object: array");
  CHECK(error_of(with([](json& j) { j["env"]["1X"] = "v"; })) ==
        "decoys: env: not a variable name (want [A-Za-z_][A-Za-z0-9_]*): 1X");
  CHECK(error_of(with([](json& j) { j["env"]["A=B"] = "v"; })) ==
        "decoys: env: not a variable name (want [A-Za-z_][A-Za-z0-9_]*): A=B");
  CHECK(error_of(with([](json& j) { j["env"]["GH_TOKEN"] = 7; })) == "decoys: env.GH_TOKEN: not a string: number");
  CHECK(error_of(with([](json& j) { j["env"]["GH_TOKEN"] = std::string("a\0b", 3); })) ==
        "decoys: env.GH_TOKEN: contains a NUL byte");
  CHECK(error_of(with([](json& j) { j["values"] = json::array(); })) ==
        "decoys: values: empty (a decoy set with nothing to look for)");
  CHECK(error_of(with([](json& j) { j["values"][3] = nullptr; })) == "decoys: values[3]: not a string: null");
  CHECK(error_of(with([](json& j) { j["values"][0] = "AKIA1234567890123"; })) ==
        "decoys: values[0]: too short: 17 characters (want at least 20)");
  CHECK(error_of(with([](json& j) { j["values"][1] = "abcdefghij/klmnopqrstuv"; })) ==
        "decoys: values[1]: a character JSON may escape (want only A-Z a-z 0-9 - _)");

  // No message quotes a value or a file's content.
  json bad = with([](json& j) { j["values"][0] = std::string(j["values"][0]) + "\""; });
  const std::string message = error_of(bad);
  for (const auto& v : good["values"]) CHECK(message.find(std::string(v)) == std::string::npos);
}
