#include "catalog/query.h"

#include "catalog/fields.h"
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

// An optional '-', digits, at most one '.', at least one digit.
bool IsNumber(const std::string& v) {
  size_t i = !v.empty() && v[0] == '-' ? 1 : 0, digits = 0, dots = 0;
  for (; i < v.size(); ++i) {
    if (v[i] >= '0' && v[i] <= '9') ++digits;
    else if (v[i] == '.') ++dots;
    else return false;
  }
  return digits > 0 && dots <= 1;
}

// A date bound as a full timestamp: "2024-01-02" -> "2024-01-02T00:00:00Z",
// "2024-01-02T10:00" -> "2024-01-02T10:00:00Z".
std::string FullTimestamp(std::string v) {
  if (!v.empty() && v.back() == 'Z') v.pop_back();
  if (v.size() == 10) v += "T00:00";
  if (v.size() == 16) v += ":00";
  return v + "Z";
}

bool HasUnescaped(const std::string& v, char c) {
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '\\' && i + 1 < v.size()) ++i;
    else if (v[i] == c) return true;
  }
  return false;
}

const char* OpText(QueryOp op) {
  switch (op) {
    case QueryOp::kLess: return "<";
    case QueryOp::kGreater: return ">";
    default: return "=";
  }
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
    if (p.empty()) return Status(Code::kInvalidArgument, "empty term in query '" + std::string(expr) + "'");
    QueryTerm t;
    auto op = p.find_first_of("=<>");
    if (op == std::string::npos)
      return Status(Code::kInvalidArgument, "term '" + p + "' is not key=value (or key<value, key>value)");
    std::string key = p.substr(0, op), value = p.substr(op + 1);
    t.op = p[op] == '<' ? QueryOp::kLess : p[op] == '>' ? QueryOp::kGreater : QueryOp::kEquals;
    if (!key.empty() && key[0] == '!') {
      t.negated = true;
      key.erase(0, 1);
    } else if (t.op == QueryOp::kEquals && !key.empty() && key.back() == '!') {
      t.negated = true;  // key!=value
      key.pop_back();
    }
    if (key.empty()) return Status(Code::kInvalidArgument, "term '" + p + "' has no key");
    for (char c : key)
      if (!IsKeyChar(c))
        return Status(Code::kInvalidArgument,
                      "key '" + key + "' may only contain letters, digits, '_', '-', '.'");
    if (value.empty()) return Status(Code::kInvalidArgument, "term '" + p + "' has no value");
    t.key = key;
    t.value = value;
    for (const auto& alt : QueryAlternatives(value))
      if (alt.text.empty())
        return Status(Code::kInvalidArgument, "term '" + p + "' has an empty alternative (around '|')");
    const QueryKeyDef* def = FindQueryKey(key);
    bool plain = !HasUnescaped(value, '|') && !HasUnescaped(value, '*');
    if (def && (def->kind == QueryKeyKind::kAfter || def->kind == QueryKeyKind::kBefore)) {
      if (t.op != QueryOp::kEquals || !IsDate(value))
        return Status(Code::kInvalidArgument,
                      key + OpText(t.op) + value + ": expected a date, " + key +
                          "=YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
    } else if (t.op != QueryOp::kEquals) {
      if (def && def->kind != QueryKeyKind::kTime)
        return Status(Code::kInvalidArgument,
                      "term '" + p + "': '<' and '>' compare dates and numbers; " + key +
                          " is a name (use = with | and *)");
      if (!plain || !(IsDate(value) || (!def && IsNumber(value))))
        return Status(Code::kInvalidArgument,
                      "term '" + p + "': expected a date YYYY-MM-DD[THH:MM[:SS]Z]" +
                          std::string(def ? "" : " or a number") + " after '" + OpText(t.op) + "'");
    }
    q.terms.push_back(std::move(t));
  }
  return q;
}

std::string Query::ToString() const {
  std::string out;
  for (const auto& t : terms) {
    if (!out.empty()) out += ',';
    if (t.negated) out += '!';
    out += t.key + OpText(t.op);
    for (char c : t.value) {
      if (c == ',' || c == '\\') out += '\\';
      out += c;
    }
  }
  return out;
}

std::vector<QueryAlternative> QueryAlternatives(const std::string& value) {
  std::vector<QueryAlternative> alts(1);
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    QueryAlternative& a = alts.back();
    if (c == '\\' && i + 1 < value.size() &&
        (value[i + 1] == '|' || value[i + 1] == '*' || value[i + 1] == '\\')) {
      c = value[++i];
      a.text += c;
      if (c == '\\') a.like += '\\';
      a.like += c;
    } else if (c == '|') {
      alts.emplace_back();
    } else if (c == '*') {
      a.wildcard = true;
      a.text += c;
      a.like += '%';
    } else {
      a.text += c;
      if (c == '%' || c == '_' || c == '\\') a.like += '\\';
      a.like += c;
    }
  }
  return alts;
}

std::string QueryLiteral(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '|' || c == '*') out += '\\';
    out += c;
  }
  return out;
}

namespace {

// `col` matching one alternative of a term on a key of kind `kind`.
std::string AltSql(const QueryKeyDef* def, const std::string& col, QueryOp op,
                   const QueryAlternative& alt, std::vector<std::string>* ps) {
  if (op != QueryOp::kEquals) {
    const char* cmp = op == QueryOp::kLess ? " < " : " > ";
    if (!def && IsNumber(alt.text)) {
      // Annotation values that are numbers, compared as numbers; CASE keeps
      // every other value away from the CAST (PostgreSQL would fail on it).
      ps->push_back(alt.text);
      std::string v = "CASE WHEN substr(" + col + ", 1, 1) = '-' THEN substr(" + col + ", 2) ELSE " + col + " END";
      return "CASE WHEN " + v + " <> '' AND trim(" + v + ", '0123456789.') = '' AND trim(" + v +
             ", '.') <> '' AND length(" + v + ") - length(replace(" + v +
             ", '.', '')) <= 1 THEN CAST(" + col + " AS DOUBLE PRECISION) END" + cmp +
             "CAST(? AS DOUBLE PRECISION)";
    }
    ps->push_back(FullTimestamp(alt.text));
    return col + cmp + "?";
  }
  if (alt.wildcard) {
    ps->push_back(alt.like);
    return "lower(" + col + ") LIKE lower(?) ESCAPE '\\'";
  }
  if (def && def->kind == QueryKeyKind::kName) {
    // The exact name, or the one name that equals it ignoring case.
    ps->insert(ps->end(), {alt.text, alt.text, alt.text});
    return "(" + col + " = ? OR (lower(" + col + ") = lower(?) AND (SELECT count(DISTINCT x." +
           def->names_column + ") FROM " + def->names_table + " x WHERE lower(x." + def->names_column +
           ") = lower(?)) = 1))";
  }
  if (def && def->kind == QueryKeyKind::kTime) {
    // A date or any prefix of a timestamp: created=2024-03 is March 2024.
    QueryAlternative prefix = QueryAlternatives(QueryLiteral(alt.text))[0];
    ps->push_back(prefix.like + "%");
    return col + " LIKE ? ESCAPE '\\'";
  }
  ps->push_back(alt.text);
  return col + " = ?";
}

}  // namespace

Status SlideQuerySql(const Query& q, std::string* where, std::vector<std::string>* ps) {
  for (const auto& t : q.terms) {
    // A Query may be built in code rather than parsed: check each term as
    // Parse would, since a malformed bound would silently match the wrong
    // slides.
    Query single;
    single.terms.push_back(t);
    SFS_ASSIGN_OR_RETURN(Query parsed, Query::Parse(single.ToString()));
    if (parsed.terms != single.terms)
      return Status(Code::kInvalidArgument, "query key '" + t.key + "' is malformed");
    const QueryKeyDef* def = FindQueryKey(t.key);
    std::string cond;
    if (def && def->kind == QueryKeyKind::kAfter) {
      cond = std::string(def->column) + " >= ?";
      ps->push_back(t.value);
    } else if (def && def->kind == QueryKeyKind::kBefore) {
      cond = std::string(def->column) + " < ?";
      ps->push_back(t.value);
    } else {
      std::string col = def ? def->column : "a.value";
      std::string exists_from = def ? (def->exists_from ? def->exists_from : "")
                                    : "FROM annotation a WHERE a.entity = 'slide' AND a.record_id = s.id"
                                      " AND a.key = ?";
      if (!def) ps->push_back(t.key);
      std::string alts;
      for (const auto& alt : QueryAlternatives(t.value))
        alts += (alts.empty() ? "" : " OR ") + AltSql(def, col, t.op, alt, ps);
      cond = exists_from.empty() ? "(" + alts + ")" : "EXISTS (SELECT 1 " + exists_from + " AND (" + alts + "))";
    }
    *where += t.negated ? " AND NOT (" + cond + ")" : " AND " + cond;
  }
  return Status::Ok();
}

}  // namespace samplefs
