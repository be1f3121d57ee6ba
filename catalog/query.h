// Query expressions (SPEC section 4, query/ and `samplectl query`):
// `key=value` terms joined by ',', e.g. "species=HeLa,dye=A647,tag=good".
// Known keys: species, sample, dye, structure, tag, creator, user, after,
// before; any other key matches an annotation of the slide. Terms are ANDed.
// A value may contain '='; "\," stands for a literal comma and "\\" for a
// literal backslash (any other backslash is itself), so ToString() and
// Parse() round-trip every value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "catalog/status.h"

namespace samplefs {

struct QueryTerm {
  std::string key;
  std::string value;
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

}  // namespace samplefs
