#include "catalog/query.h"

#include "catalog/names.h"

namespace samplefs {

namespace {

bool IsLeap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

// Reads `n` digits at `pos` into *out.
bool Digits(const std::string& v, size_t pos, size_t n, int* out) {
  *out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (i >= v.size() || v[i] < '0' || v[i] > '9') return false;
    *out = *out * 10 + (v[i] - '0');
  }
  return true;
}

bool IsDate(const std::string& v) {
  // YYYY-MM-DD, optionally followed by THH:MM or THH:MM:SS, optionally
  // followed by Z. Bounds are compared as text against ISO-8601 UTC
  // timestamps, which sort correctly as strings only when every field is
  // two digits and in range, so nothing looser is accepted.
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int y, mo, d, h, mi, s;
  if (v.size() < 10 || !Digits(v, 0, 4, &y) || v[4] != '-' || !Digits(v, 5, 2, &mo) ||
      v[7] != '-' || !Digits(v, 8, 2, &d))
    return false;
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] + (mo == 2 && IsLeap(y) ? 1 : 0)) return false;
  if (v.size() == 10) return true;
  std::string time = v.substr(10);
  if (time.back() == 'Z') time.pop_back();
  if (time.size() != 6 && time.size() != 9) return false;
  if (time[0] != 'T' || !Digits(time, 1, 2, &h) || time[3] != ':' || !Digits(time, 4, 2, &mi))
    return false;
  if (h > 23 || mi > 59) return false;
  if (time.size() == 9 && (time[6] != ':' || !Digits(time, 7, 2, &s) || s > 59)) return false;
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
  // Split on ','. A backslash escapes a comma ("\,") or a backslash ("\\",
  // so that a value may end in one); any other backslash is itself.
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < expr.size(); ++i) {
    char c = expr[i];
    if (c == '\\' && i + 1 < expr.size() && (expr[i + 1] == ',' || expr[i + 1] == '\\')) {
      parts.back() += expr[i + 1];
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
                    key + "=" + value + ": expected a date YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
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
      if (c == ',' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out;
}

}  // namespace samplefs
