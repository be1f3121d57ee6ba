// SQLite DDL. The views at the end are part of samplefs's documented
// interface for analysis (docs/SCHEMA.md): change them only compatibly.
#include <string>

#include "catalog/schema.h"
#include "catalog/schema_shared.h"

namespace samplefs {

namespace {


// v1 and v2 are written once for both engines: schema_shared.cc.

// Tags and annotations are polymorphic (no foreign key can name "any
// record"), so deleting a record removes its own through triggers.
std::string Triggers() {
  std::string sql = "\n";
  for (const char* t : schema::kTaggedTables)
    sql += std::string("CREATE TRIGGER ") + t + "_cleanup AFTER DELETE ON " + t + " BEGIN\n" +
           "  DELETE FROM tagging WHERE entity = '" + t + "' AND record_id = OLD.id;\n" +
           "  DELETE FROM annotation WHERE entity = '" + t + "' AND record_id = OLD.id;\n" + "END;\n";
  return sql;
}

// The documented analysis views (docs/SCHEMA.md).
const char* kViews = R"SQL(
-- The path of every entry below files/ ("Pos0/img_0001.tif"), built
-- upwards from the entry itself, so that a query for a few files (by id,
-- image or slide) walks only their own ancestors; a recursive CTE from the
-- roots down would build every path of the catalog for each query. The
-- bare `path` next to max(depth) is SQLite's documented min/max rule: it
-- comes from the deepest row, the whole path.
CREATE VIEW entry_path AS
  SELECT e.id AS id,
    (WITH RECURSIVE up(parent, path, depth) AS (
       SELECT e.parent_id, e.name, 0
       UNION ALL
       SELECT p.parent_id, p.name || '/' || up.path, up.depth + 1
         FROM up JOIN entry p ON p.id = up.parent
        WHERE p.parent_id IS NOT NULL)
     SELECT path FROM (SELECT path, max(depth) FROM up)) AS path
  FROM entry e WHERE e.parent_id IS NOT NULL;
CREATE VIEW slide_info AS
  SELECT s.id AS slide_id, s.reference AS slide, sa.name AS sample,
         sa.sample_type AS sample_type, sa.patient_id AS patient_id,
         sp.name AS species, sp.species AS organism, sp.strain AS strain,
         s.creator AS creator, s.notes AS notes, s.created AS created,
         s.modified AS modified,
         (SELECT group_concat(x, ';') FROM (
            SELECT l.structure || ':' || d.short_name AS x FROM labelling l
              JOIN dye d ON d.id = l.dye_id WHERE l.slide_id = s.id ORDER BY l.id)) AS labellings,
         (SELECT group_concat(x, ',') FROM (
            SELECT t.name AS x FROM tagging g JOIN tag t ON t.id = g.tag_id
             WHERE g.entity = 'slide' AND g.record_id = s.id ORDER BY t.name)) AS tags
    FROM slide s JOIN sample sa ON sa.id = s.sample_id
    JOIN species sp ON sp.id = sa.species_id;
CREATE VIEW image_info AS
  SELECT i.id AS image_id, i.name AS image, i.user AS user, i.acquired AS acquired,
         i.comments AS comments, si.*,
         (SELECT group_concat(x, ',') FROM (
            SELECT t.name AS x FROM tagging g JOIN tag t ON t.id = g.tag_id
             WHERE g.entity = 'image' AND g.record_id = i.id ORDER BY t.name)) AS image_tags
    FROM image i JOIN slide_info si ON si.slide_id = i.slide_id;
CREATE VIEW file_info AS
  SELECT e.id AS file_id, ep.path AS path, e.size AS size, e.hash AS hash,
         e.mode AS mode, e.mtime_ns AS mtime_ns, e.kind AS kind,
         (SELECT group_concat(x, ',') FROM (
            SELECT t.name AS x FROM tagging g JOIN tag t ON t.id = g.tag_id
             WHERE g.entity = 'entry' AND g.record_id = e.id ORDER BY t.name)) AS file_tags,
         ii.*
    FROM entry e JOIN entry_path ep ON ep.id = e.id
    JOIN image_info ii ON ii.image_id = e.image_id
   WHERE e.type = 'file';
)SQL";

// v3 is the same text on both engines: schema_shared.cc.

// v4 (trash), v5 (live mounts), v6 (POSIX times) and v7 (atime, owners)
// are written once for both engines: schema_shared.cc.


}  // namespace

std::string SqliteSchemaV1Sql() {
  return std::string(schema::kV1Tables) +
         "INSERT INTO meta(key, value) VALUES ('schema_version', '1');\n";
}

std::string SqliteSchemaSql() {
  return std::string(schema::kV1Tables) + schema::kV2Additions +
         Triggers() + schema::ViewsV3(kViews) + schema::kV3Additions + "DROP VIEW file_info;\n" + schema::FileInfoV4(kViews) + schema::kV4Trash + schema::kV5MountSessions + schema::kV6PosixTimes +
         schema::kV7AtimeOwners + "INSERT INTO meta(key, value) VALUES ('schema_version', '7');\n";
}

std::string SqliteSessionSql() {
  // SQLite gives a new row max(id) + 1: only deleting the newest row frees
  // an id for reuse, so only that is recorded. TEMP triggers work on
  // read-only connections too and need no schema version.
  std::string sql;
  for (const char* t : {"species", "sample", "dye", "slide", "labelling", "image", "entry", "tag"}) {
    const std::string table = t;
    sql += "CREATE TEMP TRIGGER IF NOT EXISTS " + table + "_id_floor AFTER DELETE ON main." + table +
           " WHEN OLD.id > coalesce((SELECT max(id) FROM main." + table + "), 0) BEGIN"
           " INSERT INTO meta(key, value) VALUES ('id_floor." + table + "', OLD.id)"
           " ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER));"
           " END;\n";
  }
  return sql;
}

std::string SqliteMigrationSql(int from_version) {
  switch (from_version) {
    case 1:
      // v1 had no file kinds: derive them from the name as the importer does.
      return std::string(schema::kV2Additions) +
             "UPDATE entry SET kind = CASE "
             " WHEN lower(name) GLOB '*.h5r' OR lower(name) GLOB '*.csv' OR lower(name) GLOB '*.json' THEN 'analysis'"
             " WHEN lower(name) GLOB '*.h5' OR lower(name) GLOB '*.tif' OR lower(name) GLOB '*.tiff'"
             "   OR lower(name) GLOB '*.nd2' OR lower(name) GLOB '*.czi' OR lower(name) GLOB '*.zarr' THEN 'raw'"
             " ELSE 'other' END WHERE type = 'file';\n" +
             Triggers() + kViews +
             "UPDATE meta SET value = '2' WHERE key = 'schema_version';\n";
    case 2:
      return "DROP VIEW file_info;\n" + schema::FileInfoV3(kViews) + schema::kV3Additions +
             "UPDATE meta SET value = '3' WHERE key = 'schema_version';\n";
    case 3:  // schema v4: trash
      return "DROP VIEW file_info;\n" + schema::FileInfoV4(kViews) + schema::kV4Trash +
             "UPDATE meta SET value = '4' WHERE key = 'schema_version';\n";
    case 4:  // schema v5: live mounts
      return std::string(schema::kV5MountSessions) + "UPDATE meta SET value = '5' WHERE key = 'schema_version';\n";
    case 5:  // schema v6: entry.ctime_ns, entry.subfolders (issue 18)
      return std::string(schema::kV6PosixTimes) + "UPDATE meta SET value = '6' WHERE key = 'schema_version';\n";
    case 6:  // schema v7: entry.atime_ns, entry.uid, entry.gid (issue 18)
      return std::string(schema::kV7AtimeOwners) + "UPDATE meta SET value = '7' WHERE key = 'schema_version';\n";
    default:
      return "";
  }
}

}  // namespace samplefs
