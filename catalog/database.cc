// Engine-neutral parts of the seam: choosing the engine from the catalog
// setting, and keeping passwords out of everything a person reads.
#include "catalog/database.h"

namespace samplefs {

Status Statement::Run() {
  for (;;) {
    auto r = Step();
    if (!r.ok()) return r.status();
    if (!*r) return Status::Ok();
  }
}

bool IsPostgresUrl(const std::string& catalog) {
  return catalog.rfind("postgresql://", 0) == 0 || catalog.rfind("postgres://", 0) == 0;
}

std::string SqlitePathOf(const std::string& catalog) {
  // sqlite:///abs/path (three slashes: an empty host) or sqlite:relative.
  if (catalog.rfind("sqlite://", 0) == 0) return catalog.substr(9);
  if (catalog.rfind("sqlite:", 0) == 0) return catalog.substr(7);
  return catalog;
}

std::string RedactCatalogUrl(const std::string& catalog) {
  if (!IsPostgresUrl(catalog)) return catalog;
  std::string s = catalog;
  // scheme://user:password@host: the userinfo ends at the last '@' before
  // the path; a password is whatever follows its first ':'.
  size_t start = s.find("://") + 3;
  size_t path = s.find_first_of("/?", start);
  size_t at = s.rfind('@', path == std::string::npos ? s.size() : path);
  if (at != std::string::npos && at >= start) {
    size_t colon = s.find(':', start);
    if (colon != std::string::npos && colon < at) s = s.substr(0, colon + 1) + "***" + s.substr(at);
  }
  // ...?password=secret&... (any case of the key).
  size_t q = s.find('?');
  while (q != std::string::npos && q < s.size()) {
    size_t key = q + 1;
    size_t amp = s.find('&', key);
    size_t end = amp == std::string::npos ? s.size() : amp;
    std::string k = s.substr(key, std::min(s.find('=', key), end) - key);
    for (char& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (k == "password") {
      s = s.substr(0, key) + "password=***" + s.substr(end);
      end = key + 12;
    }
    q = end < s.size() ? end : std::string::npos;
  }
  return s;
}

Result<std::unique_ptr<Database>> OpenDatabase(const std::string& catalog,
                                              const DatabaseOptions& options) {
  if (IsPostgresUrl(catalog)) return OpenPostgresDatabase(catalog, options);
  return OpenSqliteDatabase(SqlitePathOf(catalog), options);
}

}  // namespace samplefs
