// The fields of each record kind, in one table (issue 14 item 2).
//
// Sidecars (fs/sidecar.cc), the user.samplefs.* xattrs (fs/xattr.cc),
// samplectl dump/load (tools/samplectl/dump.cc) and the query keys
// (catalog/query.cc) all read their fields from here: adding a field to a
// record is one line in fields.cc (plus the column's migration and the
// struct member in records.h).
//
// A record is handled as a RecordData: the row plus the keys of the records
// it links to (a sample's species name, a slide's sample and species, an
// image's slide), so that every field renders and parses as text.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catalog/records.h"
#include "catalog/status.h"

namespace samplefs {

class Catalog;

enum class FieldType {
  kId,         // the record's integer id (a JSON number in sidecars)
  kKey,        // the record's unique name, its directory name
  kText,       // free text
  kTimestamp,  // ISO-8601 UTC, "YYYY-MM-DDTHH:MM:SSZ"
  kLink,       // the key of another record it belongs to (sample -> species)
  kDerived,    // computed from other records (a slide's species, labellings)
};

// A record with what its fields show.
struct RecordData {
  Entity entity = Entity::kSpecies;
  Species species;
  Sample sample;
  Dye dye;
  Slide slide;
  Image image;
  Entry entry;
  std::string species_name;     // a sample's or slide's species
  std::string sample_name;      // a slide's sample
  std::string slide_reference;  // an image's slide
  std::vector<std::pair<Labelling, std::string>> labellings;  // a slide's, with dye short names
};

struct FieldDef {
  const char* name;  // sidecar key, user.samplefs.<name>, dump key
  FieldType type;
  bool editable;    // sidecars and setxattr may change it
  bool clearable;   // removexattr empties it (free text that may be empty)
  bool stored;      // a column of the record itself: dumped and loaded
  bool files_only;  // entries: only files have it (not folders, symlinks)
  // The value as text (the xattr value; the sidecar's, except kId).
  std::string (*get)(const RecordData&);
  // Parses `value` into the record (links are resolved in the catalog:
  // kInvalidArgument 'species "X" does not exist'). Null when nothing can
  // set it (derived fields, ids).
  Status (*set)(Catalog&, RecordData&, const std::string& value);
};

// The fields of a record kind, in display order (sidecars, listxattr, dump).
const std::vector<FieldDef>& FieldsOf(Entity entity);
// nullptr when `entity` has no field `name`.
const FieldDef* FindField(Entity entity, std::string_view name);
// Whether a record (of its kind and, for entries, its type) has the field.
bool HasField(const RecordData& record, const FieldDef& field);

// Reads a record and the keys it links to. kNotFound when it is gone.
Result<RecordData> LoadRecord(Catalog& catalog, Entity entity, int64_t id);
// Writes the record's own row (Update<Kind>); labellings, tags and
// annotations are separate.
Status SaveRecord(Catalog& catalog, const RecordData& record);
// Sets one field from text: kPermission for a field that is not editable,
// kInvalidArgument for an unknown field or a bad value. Does not save.
Status SetField(Catalog& catalog, RecordData& record, std::string_view field, const std::string& value);

// "structure:dye;structure:dye" (a slide's labellings, with their dyes'
// short names, as one text).
std::string JoinLabellings(const std::vector<std::pair<Labelling, std::string>>& labellings);
std::string LabellingsText(const RecordData& record);

// What a record kind is called in messages: "species", "samples", ...
const char* EntityPlural(Entity entity);

// --- Query keys ---------------------------------------------------------
//
// The keys a query expression (catalog/query.h) may use besides annotation
// keys, with how a term on it is answered.
enum class QueryKeyKind {
  kName,   // a record's key: exact, else case-insensitive when unique that way
  kText,   // free text: exact
  kTime,   // a timestamp: '=' (with * wildcards), '<', '>'
  kAfter,  // created >= the date
  kBefore, // created < the date
};

struct QueryKeyDef {
  const char* key;
  QueryKeyKind kind;
  const char* column;  // SQL over `slide s JOIN sample sa JOIN species sp`, or
                       // over the alias of `exists_from`
  // "FROM ... WHERE <link to s.id>" of an EXISTS, or nullptr for a column of
  // the slide's own row.
  const char* exists_from;
  // For kName: the table and column of the names, for the uniqueness rule.
  const char* names_table;
  const char* names_column;
  const char* about;  // for the list of known keys
};

const std::vector<QueryKeyDef>& QueryKeys();
const QueryKeyDef* FindQueryKey(std::string_view key);

}  // namespace samplefs
