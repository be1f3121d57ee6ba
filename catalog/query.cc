#include "catalog/query.h"

#include "catalog/names.h"

namespace samplefs {

namespace {

bool IsDate(const std::string& v) {
  // YYYY-MM-DD, optionally followed by THH:MM[:SS][Z]; compared as text
  // against ISO-8601 UTC timestamps, which sort correctly as strings.
  if (v.size() < 10) return false;
  for (int i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (v[i] < '0' || v[i] > '9') return false;
  if (v[4] != '-' || v[7] != '-') return false;
  if (v.size() == 10) return true;
  if (v[10] != 'T') return false;
  for (size_t i = 11; i < v.size(); ++i) {
    char c = v[i];
    if (!((c >= '0' && c <= '9') || c == ':' || c == 'Z')) return false;
  }
  return true;
}

bool IsKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.';
}

}  // namespace

Result<Query> Query::Parse(std::string_view expr) {
  Query q;
  if (expr.empty()) return Status(Code::kInvalidArgument, "empty query expression");
  if (!IsValidUtf8(expr)) return Status(Code::kInvalidArgument, "query expression is not UTF-8");
  // Split on ',' not preceded by a backslash.
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < expr.size(); ++i) {
    char c = expr[i];
    if (c == '\\' && i + 1 < expr.size() && expr[i + 1] == ',') {
      parts.back() += ',';
      ++i;
    } else if (c == ',') {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  for (const auto& p : parts) {
    auto eq = p.find('=');
    if (p.empty()) return Status(Code::kInvalidArgument, "empty term in query '" + std::string(expr) + "'");
    if (eq == std::string::npos)
      return Status(Code::kInvalidArgument, "term '" + p + "' is not key=value");
    std::string key = p.substr(0, eq), value = p.substr(eq + 1);
    if (key.empty()) return Status(Code::kInvalidArgument, "term '" + p + "' has no key");
    for (char c : key)
      if (!IsKeyChar(c))
        return Status(Code::kInvalidArgument,
                      "key '" + key + "' may only contain letters, digits, '_', '-', '.'");
    if (value.empty()) return Status(Code::kInvalidArgument, "term '" + p + "' has no value");
    if ((key == "after" || key == "before") && !IsDate(value))
      return Status(Code::kInvalidArgument,
                    key + "=" + value + ": expected a date YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
    q.terms.push_back({key, value});
  }
  return q;
}

std::string Query::ToString() const {
  std::string out;
  for (const auto& t : terms) {
    if (!out.empty()) out += ',';
    out += t.key + '=';
    for (char c : t.value) {
      if (c == ',') out += '\\';
      out += c;
    }
  }
  return out;
}

}  // namespace samplefs
