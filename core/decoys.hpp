#pragma once
// Honeytokens: decoy credentials that tokfence plants where an attacker looks (issue #19). A decoy
// is worthless (no provider knows it), unique per call and known only to the daemon, so the only way
// it can show up in a request body, in egress traffic or in a response is that someone read the
// file or variable it was planted in and is sending it on. proxy/immune's SecretScanner looks for
// `Decoys::values`.
//
// What the decoys must be, and why:
//  - shaped like the real thing (an AWS key id is AKIA + 16 of [A-Z2-7], a GitHub token ghp_/gho_ +
//    36 alphanumerics, an OpenAI project key sk-proj-..., an Anthropic key sk-ant-api03-...AA), in
//    files that parse as their real formats (INI for ~/.aws/credentials, YAML for gh's hosts.yml,
//    dotenv, netrc), so an attacker who checks cannot tell;
//  - made only of characters JSON never escapes (A-Z a-z 0-9 - _), so a stolen value appears
//    verbatim in a JSON request body and the scanner needs no decoding;
//  - at least 20 characters each, so every value has many 16-byte windows for the scanner;
//  - drawn from the OS CSPRNG (OpenSSL's RAND_bytes): two calls share no value.
// Decoys are not secrets (nothing accepts them), so they live in ordinary strings; they are still
// never logged, because a decoy in a log the agent can read is a decoy the agent can avoid.
//
// Deliberately absent: ~/.npmrc and a github.com entry in ~/.netrc. npm and git send such
// credentials even for public packages and repositories and fail on a bad one, so they would break
// an agent's ordinary installs and clones. The .netrc names Heroku's hosts instead, as the Heroku
// CLI writes it.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace tokfence {

struct DecoyFile {
  std::string path;  // relative to the agent's HOME, e.g. ".aws/credentials"
  std::string content;
};

struct Decoys {
  std::vector<DecoyFile> files;                           // .aws/credentials, .config/gh/hosts.yml, .env, .netrc
  std::vector<std::pair<std::string, std::string>> env;   // AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GH_TOKEN
  std::vector<std::string> values;                        // every secret-shaped value above, for the scanner
};

// A fresh set: every value drawn from the CSPRNG (aborts if the OS has none: nothing sensible to do).
Decoys make_decoys();

// {"files":[{"path":P,"content":C},...],"env":{"NAME":"VALUE",...},"values":[V,...]}
nlohmann::json decoys_json(const Decoys& decoys);

// The inverse of decoys_json, strict: an error names the first bad field ("decoys: files[1].path:
// ...") and never quotes a value or a file's content. Refused: unknown or missing keys, wrong types;
// a path that is empty, absolute, has an empty, "." or ".." component, or a NUL; two files with one
// path; an environment name that is not [A-Za-z_][A-Za-z0-9_]*, a value with a NUL; a value shorter
// than 20 characters or with a character other than A-Z a-z 0-9 - _; an empty `values`.
Result<Decoys> decoys_from_json(const nlohmann::json& json);

}  // namespace tokfence
