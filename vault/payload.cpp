#include "vault/payload.hpp"

#include <cstring>

#include "core/names.hpp"

namespace tokfence::vault::payload {

namespace {

bool needs_escape(char c) { return c == '"' || c == '\\'; }

std::size_t escaped_size(std::string_view s) {
  std::size_t n = s.size();
  for (char c : s) n += needs_escape(c) ? 1 : 0;
  return n;
}

class Writer {
 public:
  explicit Writer(SecureBytes& out) : out_(out) {}
  void raw(std::string_view s) {
    std::memcpy(out_.chars() + pos_, s.data(), s.size());
    pos_ += s.size();
  }
  void string(std::string_view s) {
    raw("\"");
    for (char c : s) {
      if (needs_escape(c)) out_.chars()[pos_++] = '\\';
      out_.chars()[pos_++] = c;
    }
    raw("\"");
  }
  std::size_t pos() const { return pos_; }

 private:
  SecureBytes& out_;
  std::size_t pos_ = 0;
};

// A strict recursive-descent reader over the decrypted buffer. Nesting is bounded, so a crafted
// bundle cannot exhaust the stack.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  Result<Entries> document() {
    Entries entries;
    ws();
    if (!eat('{')) return bad("expected an object");
    ws();
    if (eat('}')) return finish(std::move(entries));
    while (true) {
      ws();
      auto name = plain_string();
      if (!name) return std::unexpected(name.error());
      if (!is_valid_provider_name(*name)) return bad("invalid provider name");
      if (entries.contains(*name)) return bad("provider '" + *name + "' appears twice");
      ws();
      if (!eat(':')) return bad("expected ':'");
      auto entry = entry_object(*name);
      if (!entry) return std::unexpected(entry.error());
      entries.emplace(*name, std::move(*entry));
      ws();
      if (eat(',')) continue;
      if (eat('}')) return finish(std::move(entries));
      return bad("expected ',' or '}'");
    }
  }

 private:
  Result<Entries> finish(Entries entries) {
    ws();
    if (pos_ != in_.size()) return bad("trailing data");
    return entries;
  }

  Result<Entry> entry_object(const std::string& provider) {
    ws();
    if (!eat('{')) return bad("expected an object for provider '" + provider + "'");
    Entry e;
    bool have_key = false;
    ws();
    if (!eat('}')) {
      while (true) {
        ws();
        auto field = plain_string();
        if (!field) return std::unexpected(field.error());
        ws();
        if (!eat(':')) return bad("expected ':'");
        ws();
        if (*field == "key") {
          auto key = secret_string();
          if (!key) return std::unexpected(key.error());
          if (auto ok = check_key(key->reveal()); !ok) return bad("key of provider '" + provider + "': " + ok.error().message);
          e.key = std::move(*key);
          have_key = true;
        } else if (*field == "hosts") {
          auto hosts = host_array(provider);
          if (!hosts) return std::unexpected(hosts.error());
          e.hosts = std::move(*hosts);
        } else if (*field == "in") {
          auto in = plain_string();
          if (!in) return std::unexpected(in.error());
          if (*in != "path" && *in != "header") return bad("provider '" + provider + "' has an unknown position");
          e.in_path = *in == "path";
        } else if (*field == "added_at" || *field == "rotated_at") {
          auto n = integer();
          if (!n) return std::unexpected(n.error());
          (*field == "added_at" ? e.added_at : e.rotated_at) = *n;
        } else if (auto skipped = skip_value(0); !skipped) {
          return std::unexpected(skipped.error());
        }
        ws();
        if (eat(',')) continue;
        if (eat('}')) break;
        return bad("expected ',' or '}'");
      }
    }
    if (!have_key) return bad("provider '" + provider + "' has no key");
    return e;
  }

  // ["host", ...]: at most kMaxHosts, each a valid host, none twice. The error does not quote
  // a bad element: in a damaged payload it could be anything, key material included.
  Result<std::vector<std::string>> host_array(const std::string& provider) {
    if (!eat('[')) return bad("expected an array of hosts for provider '" + provider + "'");
    std::vector<std::string> hosts;
    ws();
    if (eat(']')) return hosts;
    while (true) {
      ws();
      if (hosts.size() == kMaxHosts) return bad("provider '" + provider + "' has too many hosts");
      auto host = plain_string();
      if (!host) return std::unexpected(host.error());
      hosts.push_back(std::move(*host));
      ws();
      if (eat(',')) continue;
      if (eat(']')) break;
      return bad("expected ',' or ']'");
    }
    if (!check_hosts(hosts)) return bad("provider '" + provider + "' has an invalid or repeated host");
    return hosts;
  }

  // Decodes a string into a SecureBytes scratch buffer, then into a SecretString.
  Result<SecretString> secret_string() {
    if (!eat('"')) return bad("expected a string");
    SecureBytes scratch(in_.size() - pos_);
    std::size_t n = 0;
    while (pos_ < in_.size() && in_[pos_] != '"') {
      char c = in_[pos_++];
      if (static_cast<unsigned char>(c) < 0x20) return bad("control character in a string");
      if (c == '\\') {
        auto decoded = escape();
        if (!decoded) return std::unexpected(decoded.error());
        c = *decoded;
      }
      scratch.chars()[n++] = c;
    }
    if (!eat('"')) return bad("unterminated string");
    return SecretString(std::string_view(scratch.chars(), n));
  }

  // Names and field names: short, non-secret.
  Result<std::string> plain_string() {
    if (!eat('"')) return bad("expected a string");
    std::string s;
    while (pos_ < in_.size() && in_[pos_] != '"') {
      char c = in_[pos_++];
      if (static_cast<unsigned char>(c) < 0x20) return bad("control character in a string");
      if (c == '\\') {
        auto decoded = escape();
        if (!decoded) return std::unexpected(decoded.error());
        c = *decoded;
      }
      if (s.size() >= 256) return bad("name too long");
      s += c;
    }
    if (!eat('"')) return bad("unterminated string");
    return s;
  }

  // Only escapes that decode to one byte of ASCII: keys and names are ASCII.
  Result<char> escape() {
    if (pos_ >= in_.size()) return bad("unterminated escape");
    char c = in_[pos_++];
    switch (c) {
      case '"': case '\\': case '/': return c;
      case 'b': return '\b';
      case 'f': return '\f';
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case 'u': {
        if (in_.size() - pos_ < 4) return bad("bad \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
          char h = in_[pos_++];
          v <<= 4;
          if (h >= '0' && h <= '9') v |= h - '0';
          else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
          else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
          else return bad("bad \\u escape");
        }
        if (v >= 0x80) return bad("non-ASCII \\u escape");
        return static_cast<char>(v);
      }
      default: return bad("bad escape");
    }
  }

  Result<std::int64_t> integer() {
    bool neg = eat('-');
    if (pos_ >= in_.size() || in_[pos_] < '0' || in_[pos_] > '9') return bad("expected an integer");
    std::int64_t v = 0;
    int digits = 0;
    while (pos_ < in_.size() && in_[pos_] >= '0' && in_[pos_] <= '9') {
      if (++digits > 18) return bad("integer out of range");
      v = v * 10 + (in_[pos_++] - '0');
    }
    return neg ? -v : v;
  }

  Result<void> skip_value(int depth) {
    if (depth > 16) return bad("nested too deeply");
    ws();
    if (pos_ >= in_.size()) return bad("unexpected end");
    char c = in_[pos_];
    if (c == '"') {
      auto s = secret_string();  // an unknown field might hold anything: treat it as secret
      if (!s) return std::unexpected(s.error());
      return {};
    }
    if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      ++pos_;
      ws();
      if (eat(close)) return {};
      while (true) {
        ws();
        if (c == '{') {
          auto s = plain_string();
          if (!s) return std::unexpected(s.error());
          ws();
          if (!eat(':')) return bad("expected ':'");
        }
        if (auto v = skip_value(depth + 1); !v) return v;
        ws();
        if (eat(',')) continue;
        if (eat(close)) return {};
        return bad("expected ',' or a closing bracket");
      }
    }
    for (std::string_view word : {"true", "false", "null"})
      if (in_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return {};
      }
    if (c == '-' || (c >= '0' && c <= '9')) {
      ++pos_;
      while (pos_ < in_.size() && std::strchr("0123456789.eE+-", in_[pos_]) && in_[pos_] != '\0') ++pos_;
      return {};
    }
    return bad("unexpected character");
  }

  void ws() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\n' || in_[pos_] == '\t' || in_[pos_] == '\r')) ++pos_;
  }
  bool eat(char c) {
    if (pos_ < in_.size() && in_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  std::unexpected<Error> bad(const std::string& what) const {
    return fail("payload: malformed at byte " + std::to_string(pos_) + ": " + what);
  }

  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace

Result<void> check_key(std::string_view key) {
  if (key.empty()) return fail("key: is empty");
  if (key.size() > 8192) return fail("key: longer than 8192 characters");
  for (char c : key)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      return fail("key: contains a space, control or non-ASCII character (keys are printable ASCII)");
  return {};
}

Result<void> check_hosts(const std::vector<std::string>& hosts) {
  if (hosts.size() > kMaxHosts) return fail("hosts: more than " + std::to_string(kMaxHosts) + " for one secret");
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    if (auto ok = check_secret_host(hosts[i]); !ok) return ok;
    for (std::size_t j = 0; j < i; ++j)
      if (hosts[j] == hosts[i]) return fail("host '" + hosts[i] + "': given twice");
  }
  return {};
}

SecureBytes serialize(const Entries& entries) {
  // Size first, so the one buffer never grows.
  auto number = [](std::int64_t v) { return std::to_string(v); };
  std::size_t size = 2;
  bool first = true;
  for (const auto& [name, e] : entries) {
    size += (first ? 0 : 1) + escaped_size(name) + 2 + std::strlen(":{\"key\":") + escaped_size(e.key.reveal()) + 2 +
            std::strlen(",\"added_at\":") + number(e.added_at).size() + std::strlen(",\"rotated_at\":") +
            number(e.rotated_at).size() + 1;
    if (!e.hosts.empty()) {
      size += std::strlen(",\"hosts\":[") + e.hosts.size() - 1 + 1;  // commas between, ']'
      for (const auto& h : e.hosts) size += escaped_size(h) + 2;
      if (e.in_path) size += std::strlen(",\"in\":\"path\"");
    }
    first = false;
  }
  SecureBytes out(size);
  Writer w(out);
  w.raw("{");
  first = true;
  for (const auto& [name, e] : entries) {
    if (!first) w.raw(",");
    first = false;
    w.string(name);
    w.raw(":{\"key\":");
    w.string(e.key.reveal());
    w.raw(",\"added_at\":");
    w.raw(number(e.added_at));
    w.raw(",\"rotated_at\":");
    w.raw(number(e.rotated_at));
    if (!e.hosts.empty()) {
      w.raw(",\"hosts\":[");
      for (std::size_t i = 0; i < e.hosts.size(); ++i) {
        if (i) w.raw(",");
        w.string(e.hosts[i]);
      }
      w.raw("]");
      if (e.in_path) w.raw(",\"in\":\"path\"");
    }
    w.raw("}");
  }
  w.raw("}");
  out.truncate(w.pos());
  return out;
}

Result<Entries> parse(std::string_view json) { return Reader(json).document(); }

}  // namespace tokfence::vault::payload
