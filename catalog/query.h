// Query expressions (SPEC section 4, query/ and `samplectl query`): terms
// joined by ',', all of which a slide must match, e.g.
// "species=HeLa,dye=A647|A488,!tag=bad,created>2024-01-01".
//
// A term is KEY=VALUE, KEY<VALUE or KEY>VALUE, optionally negated with a
// leading '!' (or KEY!=VALUE). Keys are the query keys of catalog/fields.h
// (species, sample, dye, structure, tag, creator, user, created, modified,
// acquired, after, before) or an annotation key of a slide.
//
// Two levels of escaping, so that ToString() and Parse() round-trip every
// value: in the expression "\," is a literal comma and "\\" a backslash
// (any other backslash is itself); in the value that results, '|'
// separates alternatives, '*' matches any run of characters, and "\|",
// "\*", "\\" are literal (QueryLiteral escapes a name).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "catalog/status.h"

namespace samplefs {

enum class QueryOp { kEquals, kLess, kGreater };

struct QueryTerm {
  std::string key;
  std::string value;  // the value level: alternatives, wildcards (see above)
  QueryOp op = QueryOp::kEquals;
  bool negated = false;
  bool operator==(const QueryTerm&) const = default;
};

struct Query {
  std::vector<QueryTerm> terms;

  // kInvalidArgument with a message that says which term is wrong and why.
  static Result<Query> Parse(std::string_view expression);
  // The canonical expression (terms in the given order).
  std::string ToString() const;
  bool empty() const { return terms.empty(); }
};

// One alternative of a value: its literal text, or a pattern.
struct QueryAlternative {
  std::string text;  // escapes removed; for a pattern, what it says with '*' kept
  bool wildcard = false;
  std::string like;  // a LIKE pattern with '\' as its ESCAPE (wildcards only)
};
std::vector<QueryAlternative> QueryAlternatives(const std::string& value);

// A value that matches exactly `text` (escapes '\', '|' and '*').
std::string QueryLiteral(std::string_view text);

// SQL for the slides matching every term, over
// `slide s JOIN sample sa ON sa.id = s.sample_id JOIN species sp ON sp.id = sa.species_id`:
// " AND (...)" per term, every value a '?' parameter appended to `params`.
// Portable SQL (lower, LIKE ... ESCAPE, CASE, CAST AS DOUBLE PRECISION).
Status SlideQuerySql(const Query& query, std::string* where, std::vector<std::string>* params);

}  // namespace samplefs
