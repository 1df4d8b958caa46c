// The Secret Service backend (libsecret): one item per provider in the default collection, under
// tokfence's own schema "org.tokfence.Key" with the attributes provider, added_at and rotated_at
// (unix seconds as strings: libsecret's integer attributes are 32-bit), and for a secret bound to
// hosts, hosts ("api.example.com,*.example.org"; an item without it is a provider key, as every item
// made before hosts existed), and for one bound for the URL path too (vault add --in path), in = "path"
// (an item without it, as every item made before positions existed, goes in credential fields
// only). Label "tokfence: <provider>".
//
// tokfence never asks the keyring to unlock (that would pop a prompt, or hang without a desktop):
// a locked collection is an error that says so. Whether a Secret Service exists at all is asked of
// the bus (NameHasOwner) before libsecret is used, because libsecret would otherwise D-Bus-activate
// a keyring daemon and wait for it.
#include <libsecret/secret.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/names.hpp"
#include "vault/payload.hpp"
#include "vault/vault.hpp"

namespace tokfence::vault {

namespace {

constexpr const char* kLocked = "secret service: collection is locked: unlock your keyring";
constexpr const char* kUnreachable =
    "secret service: not reachable on the session bus: start a keyring daemon or set [vault] backend = \"file\"";

const SecretSchema* schema() {
  static const SecretSchema s = [] {
    SecretSchema x{};
    x.name = "org.tokfence.Key";
    x.flags = SECRET_SCHEMA_NONE;
    x.attributes[0] = {"provider", SECRET_SCHEMA_ATTRIBUTE_STRING};
    x.attributes[1] = {"added_at", SECRET_SCHEMA_ATTRIBUTE_STRING};
    x.attributes[2] = {"rotated_at", SECRET_SCHEMA_ATTRIBUTE_STRING};
    x.attributes[3] = {"hosts", SECRET_SCHEMA_ATTRIBUTE_STRING};
    x.attributes[4] = {"in", SECRET_SCHEMA_ATTRIBUTE_STRING};
    x.attributes[5] = {nullptr, SECRET_SCHEMA_ATTRIBUTE_STRING};
    return x;
  }();
  return &s;
}

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

// Small owners for the GLib objects this file touches.
struct GErrorOwner {
  GError* e = nullptr;
  ~GErrorOwner() {
    if (e) g_error_free(e);
  }
  std::string text() const { return e && e->message ? e->message : "unknown error"; }
};
template <class T>
struct GObj {
  T* p = nullptr;
  explicit GObj(T* x = nullptr) : p(x) {}
  ~GObj() {
    if (p) g_object_unref(p);
  }
  GObj(const GObj&) = delete;
  GObj& operator=(const GObj&) = delete;
};
struct Attrs {
  GHashTable* t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
  ~Attrs() { g_hash_table_unref(t); }
  void set(const char* k, const std::string& v) { g_hash_table_insert(t, g_strdup(k), g_strdup(v.c_str())); }
};
struct ItemList {
  GList* l = nullptr;
  ~ItemList() { g_list_free_full(l, g_object_unref); }
};

std::int64_t attr_int(GHashTable* attrs, const char* name) {
  const char* v = static_cast<const char*>(g_hash_table_lookup(attrs, name));
  return v ? std::strtoll(v, nullptr, 10) : 0;
}
std::string attr_str(GHashTable* attrs, const char* name) {
  const char* v = static_cast<const char*>(g_hash_table_lookup(attrs, name));
  return v ? v : "";
}

struct Found {
  SecretItem* item;  // owned by the ItemList it came from
  std::string provider;
  std::int64_t added_at;
  std::int64_t rotated_at;
  std::string hosts;  // the attribute as stored, "" = none
  bool in_path;       // in = "path"
};

class SecretServiceVault final : public Vault {
 public:
  explicit SecretServiceVault(SecretService* service) : service_(service) {}

  std::string backend_name() const override { return "secret-service"; }

  Result<std::optional<SecretString>> get(const std::string& provider) override {
    std::lock_guard lock(mutex_);
    ItemList items;
    auto found = search(provider, items);
    if (!found) return std::unexpected(found.error());
    if (found->empty()) return std::optional<SecretString>{};
    auto key = secret_of(found->front().item);
    if (!key) return std::unexpected(key.error());
    return std::optional<SecretString>{std::move(*key)};
  }

  Result<std::vector<std::pair<std::string, SecretString>>> get_all() override {
    auto records = this->records();
    if (!records) return std::unexpected(records.error());
    std::vector<std::pair<std::string, SecretString>> out;
    for (auto& r : *records) out.emplace_back(r.provider, std::move(r.key));
    return out;
  }

  Result<void> put(const std::string& provider, const SecretString& key, Overwrite overwrite,
                   const std::vector<std::string>& hosts, bool in_path) override {
    if (auto ok = check_provider_name(provider); !ok) return ok;
    if (auto ok = payload::check_key(key.reveal()); !ok) return ok;
    if (auto ok = check_secret_hosts(hosts); !ok) return ok;
    if (in_path && hosts.empty()) return fail("vault: a position (--in path) goes with the hosts: give --host too");
    std::lock_guard lock(mutex_);
    ItemList items;
    auto found = search(provider, items);
    if (!found) return std::unexpected(found.error());
    if (!found->empty() && overwrite == Overwrite::no)
      return fail("vault: provider '" + provider + "' already has a key: replace it with 'tokfence vault rotate " +
                  provider + " -'");
    if (found->empty() && overwrite == Overwrite::existing_only)
      return fail("vault: no key for provider '" + provider + "': add one with 'tokfence vault add " + provider + " -'");
    if (found->empty()) return store(provider, key, now(), 0, join_hosts(hosts), in_path);
    if (hosts.empty()) return replace(*found, key, now(), found->front().hosts, found->front().in_path);
    return replace(*found, key, now(), join_hosts(hosts), in_path);
  }

  Result<void> remove(const std::string& provider) override {
    if (auto ok = check_provider_name(provider); !ok) return ok;
    std::lock_guard lock(mutex_);
    ItemList items;
    auto found = search(provider, items);
    if (!found) return std::unexpected(found.error());
    if (found->empty()) return fail("vault: no key for provider '" + provider + "': see 'tokfence vault list'");
    for (const auto& f : *found) {
      GErrorOwner err;
      if (!secret_item_delete_sync(f.item, nullptr, &err.e))
        return fail("secret service: cannot delete the item of '" + provider + "': " + err.text());
    }
    return {};
  }

  Result<std::vector<KeyInfo>> list() override {
    auto records = this->records();
    if (!records) return std::unexpected(records.error());
    std::vector<KeyInfo> out;
    for (const auto& r : *records)
      out.push_back(KeyInfo{r.provider, "secret-service", r.added_at, r.rotated_at, r.key.fingerprint(), r.hosts, r.in_path});
    return out;
  }

  Result<std::vector<KeyRecord>> records() override {
    std::lock_guard lock(mutex_);
    ItemList items;
    auto found = search("", items);
    if (!found) return std::unexpected(found.error());
    std::map<std::string, KeyRecord> by_name;
    for (const auto& f : *found) {
      if (!is_valid_provider_name(f.provider) || by_name.contains(f.provider)) continue;
      // A damaged binding must not turn a bound secret into a provider key: refuse, naming the fix.
      auto hosts = split_hosts(f.hosts);
      if (!hosts)
        return fail("secret service: the item of '" + f.provider + "' has a bad hosts attribute: " + hosts.error().message +
                    ": remove it with 'tokfence vault remove " + f.provider + "' and add it again");
      auto key = secret_of(f.item);
      if (!key) return std::unexpected(key.error());
      const bool in_path = f.in_path && !hosts->empty();
      by_name.emplace(f.provider, KeyRecord{f.provider, std::move(*key), f.added_at, f.rotated_at, std::move(*hosts), in_path});
    }
    std::vector<KeyRecord> out;
    for (auto& [name, r] : by_name) out.push_back(std::move(r));
    return out;
  }

  Result<std::vector<MergeReport>> merge(const std::vector<KeyRecord>& records, Overwrite overwrite) override {
    for (const auto& r : records) {
      if (auto ok = check_provider_name(r.provider); !ok) return std::unexpected(ok.error());
      if (auto ok = payload::check_key(r.key.reveal()); !ok)
        return fail("import: provider '" + r.provider + "': " + ok.error().message);
      if (auto ok = check_secret_hosts(r.hosts); !ok) return fail("import: '" + r.provider + "': " + ok.error().message);
    }
    std::lock_guard lock(mutex_);
    // The keyring has no transactions: every change is remembered with what it replaced, and a
    // failure part-way undoes the changes made so far, so an import lands whole or not at all
    // (like the file backend's single write).
    struct Change {
      std::string provider;
      std::optional<KeyRecord> previous;  // nullopt: the provider was added
      std::string previous_hosts;         // its hosts attribute as it was
      bool previous_in_path = false;
    };
    std::vector<Change> done;
    auto undo = [&](const Error& cause) -> Error {
      std::vector<std::string> stuck;
      for (auto it = done.rbegin(); it != done.rend(); ++it) {
        ItemList items;
        auto found = search(it->provider, items);
        bool ok = static_cast<bool>(found);
        if (ok && !it->previous) {
          for (const auto& f : *found) {
            GErrorOwner err;
            ok = secret_item_delete_sync(f.item, nullptr, &err.e) && ok;
          }
        } else if (ok && !found->empty()) {
          std::vector<Found> restored = *found;
          restored.front().added_at = it->previous->added_at;
          ok = static_cast<bool>(replace(restored, it->previous->key, it->previous->rotated_at, it->previous_hosts,
                                          it->previous_in_path));
        }
        if (!ok) stuck.push_back(it->provider);
      }
      std::string what = stuck.empty() ? "nothing was imported (the changes made before the failure were undone)"
                                       : "could not undo the import of: " + join(stuck) + " (check 'tokfence vault list')";
      return Error{"import: " + cause.message + "; " + what};
    };
    std::vector<MergeReport> reports;
    for (const auto& r : records) {
      ItemList items;
      auto found = search(r.provider, items);
      if (!found) return std::unexpected(undo(found.error()));
      if (found->empty()) {
        auto ok = fail_for_test(done.size());
        if (ok) ok = store(r.provider, r.key, r.added_at ? r.added_at : now(), r.rotated_at, join_hosts(r.hosts),
                         r.in_path && !r.hosts.empty());
        if (!ok) return std::unexpected(undo(ok.error()));
        done.push_back({r.provider, std::nullopt, "", false});
        reports.push_back({r.provider, MergeOutcome::added});
      } else if (overwrite == Overwrite::yes) {
        auto previous = secret_of(found->front().item);
        if (!previous) return std::unexpected(undo(previous.error()));
        KeyRecord before{r.provider, std::move(*previous), found->front().added_at, found->front().rotated_at, {}};
        std::string before_hosts = found->front().hosts;
        const bool before_in_path = found->front().in_path;
        auto ok = fail_for_test(done.size());
        if (ok) ok = replace(*found, r.key, now(), join_hosts(r.hosts), r.in_path && !r.hosts.empty());
        if (!ok) return std::unexpected(undo(ok.error()));
        done.push_back({r.provider, std::move(before), std::move(before_hosts), before_in_path});
        reports.push_back({r.provider, MergeOutcome::replaced});
      } else {
        reports.push_back({r.provider, MergeOutcome::skipped});
      }
    }
    return reports;
  }

  ~SecretServiceVault() override { g_object_unref(service_); }

 private:
  Result<void> check_unlocked() {
    GErrorOwner err;
    GObj<SecretCollection> collection(
        secret_collection_for_alias_sync(service_, SECRET_COLLECTION_DEFAULT, SECRET_COLLECTION_NONE, nullptr, &err.e));
    if (err.e) return fail("secret service: cannot find the default collection: " + err.text());
    if (!collection.p)
      return fail("secret service: no default collection: create a keyring (e.g. in seahorse) or set [vault] backend = \"file\"");
    if (secret_collection_get_locked(collection.p)) return fail(kLocked);
    return {};
  }

  // Items of the schema (all of them, or one provider's), secrets loaded. Keeps them in `items`.
  Result<std::vector<Found>> search(const std::string& provider, ItemList& items) {
    if (auto ok = check_unlocked(); !ok) return std::unexpected(ok.error());
    Attrs attrs;
    if (!provider.empty()) attrs.set("provider", provider);
    GErrorOwner err;
    items.l = secret_service_search_sync(service_, schema(), attrs.t,
                                         static_cast<SecretSearchFlags>(SECRET_SEARCH_ALL | SECRET_SEARCH_LOAD_SECRETS),
                                         nullptr, &err.e);
    if (err.e) return fail("secret service: search failed: " + err.text());
    std::vector<Found> out;
    for (GList* l = items.l; l; l = l->next) {
      auto* item = static_cast<SecretItem*>(l->data);
      if (secret_item_get_locked(item)) return fail(kLocked);
      GHashTable* a = secret_item_get_attributes(item);
      out.push_back(Found{item, attr_str(a, "provider"), attr_int(a, "added_at"), attr_int(a, "rotated_at"),
                          attr_str(a, "hosts"), attr_str(a, "in") == "path"});
      g_hash_table_unref(a);
    }
    return out;
  }

  static Result<SecretString> secret_of(SecretItem* item) {
    SecretValue* value = secret_item_get_secret(item);
    if (!value) return fail("secret service: an item's secret could not be read: unlock your keyring");
    gsize len = 0;
    const gchar* bytes = secret_value_get(value, &len);
    SecretString key(std::string_view(bytes, len));
    secret_value_unref(value);  // libsecret keeps the bytes in non-pageable memory and wipes them
    return key;
  }

  // `hosts` is the attribute's value ("" = a provider key: no attribute); `in_path` sets in = "path".
  Result<void> store(const std::string& provider, const SecretString& key, std::int64_t added, std::int64_t rotated,
                     const std::string& hosts, bool in_path) {
    Attrs attrs;
    attrs.set("provider", provider);
    attrs.set("added_at", std::to_string(added));
    attrs.set("rotated_at", std::to_string(rotated));
    if (!hosts.empty()) attrs.set("hosts", hosts);
    if (in_path) attrs.set("in", "path");
    SecretValue* value = secret_value_new(key.reveal().data(), static_cast<gssize>(key.size()), "text/plain");
    GErrorOwner err;
    std::string label = "tokfence: " + provider;
    gboolean ok = secret_service_store_sync(service_, schema(), attrs.t, SECRET_COLLECTION_DEFAULT, label.c_str(),
                                            value, nullptr, &err.e);
    secret_value_unref(value);
    if (!ok) return fail("secret service: cannot store the key of '" + provider + "': " + err.text());
    return {};
  }

  // The secret first, then the dates and `hosts` (the attribute's new value, "" = none): if the
  // second step fails, the new key is in place.
  Result<void> replace(const std::vector<Found>& found, const SecretString& key, std::int64_t rotated,
                       const std::string& hosts, bool in_path) {
    const Found& f = found.front();
    SecretValue* value = secret_value_new(key.reveal().data(), static_cast<gssize>(key.size()), "text/plain");
    GErrorOwner err;
    gboolean ok = secret_item_set_secret_sync(f.item, value, nullptr, &err.e);
    secret_value_unref(value);
    if (!ok) return fail("secret service: cannot replace the key of '" + f.provider + "': " + err.text());
    Attrs attrs;
    attrs.set("provider", f.provider);
    attrs.set("added_at", std::to_string(f.added_at));
    attrs.set("rotated_at", std::to_string(rotated));
    if (!hosts.empty()) attrs.set("hosts", hosts);
    if (in_path) attrs.set("in", "path");
    GErrorOwner err2;
    if (!secret_item_set_attributes_sync(f.item, schema(), attrs.t, nullptr, &err2.e))
      return fail("secret service: key replaced, but its dates and hosts not: " + err2.text());
    // Stray duplicates (made by hand, say) would otherwise shadow the new key.
    for (std::size_t i = 1; i < found.size(); ++i) {
      GErrorOwner err3;
      secret_item_delete_sync(found[i].item, nullptr, &err3.e);
    }
    return {};
  }

  // Test-only fault injection: with TOKFENCE_TEST_SS_FAIL_AFTER=N, the write after the first N
  // changes of a merge fails, so a test can prove the merge is undone. Unset, it never fails.
  static Result<void> fail_for_test(std::size_t changes_so_far) {
    const char* v = std::getenv("TOKFENCE_TEST_SS_FAIL_AFTER");
    if (!v || !*v || changes_so_far != static_cast<std::size_t>(std::strtoul(v, nullptr, 10))) return {};
    return fail("secret service: injected failure (TOKFENCE_TEST_SS_FAIL_AFTER)");
  }

  static std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

  SecretService* service_;
  std::mutex mutex_;
};

}  // namespace

bool secret_service_available() {
  // Without an address GLib would try X11 autolaunch of a bus; there is no keyring to find anyway.
  const char* address = std::getenv("DBUS_SESSION_BUS_ADDRESS");
  if (!address || !*address) {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    std::error_code ec;
    if (!runtime || !*runtime || !std::filesystem::exists(std::filesystem::path(runtime) / "bus", ec)) return false;
  }
  GErrorOwner err;
  GObj<GDBusConnection> bus(g_bus_get_sync(G_BUS_TYPE_SESSION, nullptr, &err.e));
  if (!bus.p) return false;
  GErrorOwner call_err;
  GVariant* reply = g_dbus_connection_call_sync(bus.p, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                                "org.freedesktop.DBus", "NameHasOwner",
                                                g_variant_new("(s)", "org.freedesktop.secrets"), G_VARIANT_TYPE("(b)"),
                                                G_DBUS_CALL_FLAGS_NO_AUTO_START, 1500, nullptr, &call_err.e);
  if (!reply) return false;
  gboolean owned = FALSE;
  g_variant_get(reply, "(b)", &owned);
  g_variant_unref(reply);
  return owned;
}

Result<std::unique_ptr<Vault>> open_secret_service_vault() {
  if (!secret_service_available()) return fail(kUnreachable);
  GErrorOwner err;
  SecretService* service = secret_service_get_sync(
      static_cast<SecretServiceFlags>(SECRET_SERVICE_OPEN_SESSION | SECRET_SERVICE_LOAD_COLLECTIONS), nullptr, &err.e);
  if (!service) return fail("secret service: cannot connect: " + err.text());
  return std::unique_ptr<Vault>(std::make_unique<SecretServiceVault>(service));
}

}  // namespace tokfence::vault
