// PostgreSQL DDL: the same tables, version ladder and analysis views as
// schema_sqlite.cc (docs/SCHEMA.md), in PostgreSQL's dialect:
//   - ids are identity columns: new rows take nextval() of the table's
//     sequence (Database::NewIdSql), which many writers share safely and
//     which never hands out an id twice, even after a rollback or a delete;
//   - text is COLLATE "C", so names sort and compare bytewise as in SQLite
//     (ls order, listings paged by name, ISO timestamps compared as text);
//   - triggers are plpgsql functions; every change to a table NOTIFYs the
//     channel "samplefs.<schema>" once per statement, so that every mount
//     learns of changes made by the others, samplectl and psql alike.
#include <string>

#include "catalog/schema.h"
#include "catalog/schema_shared.h"

namespace samplefs {

namespace {


// v1 and v2: schema_shared.cc, in PostgreSQL's words with text compared
// bytewise (COLLATE "C").
std::string V1Tables() { return schema::ForPostgres(schema::kV1Tables, true); }
std::string V2Additions() { return schema::ForPostgres(schema::kV2Additions, true); }

// Tags and annotations of a deleted record go with it (TG_ARGV[0]: the
// entity name), as the SQLite triggers do.
const char* kTriggers = R"SQL(
CREATE FUNCTION samplefs_cleanup() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM tagging WHERE entity = TG_ARGV[0] AND record_id = OLD.id;
  DELETE FROM annotation WHERE entity = TG_ARGV[0] AND record_id = OLD.id;
  RETURN NULL;
END $$;
CREATE FUNCTION samplefs_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- Delivered at commit, once per transaction for equal payloads.
  PERFORM pg_notify('samplefs.' || TG_TABLE_SCHEMA, TG_TABLE_NAME);
  RETURN NULL;
END $$;
)SQL";

const char* kNotifiedTables[] = {"species", "sample", "dye", "slide", "labelling", "image",
                                 "entry", "tag", "tagging", "annotation"};

const char* kViews = R"SQL(
-- The path of every entry below files/, built upwards from the entry
-- itself (see schema_sqlite.cc): the deepest row of the walk holds it.
CREATE VIEW entry_path AS
  SELECT e.id AS id,
    (WITH RECURSIVE up(parent, path, depth) AS (
       SELECT e.parent_id, e.name, 0
       UNION ALL
       SELECT p.parent_id, p.name || '/' || up.path, up.depth + 1
         FROM up JOIN entry p ON p.id = up.parent
        WHERE p.parent_id IS NOT NULL)
     SELECT path FROM up ORDER BY depth DESC LIMIT 1) AS path
  FROM entry e WHERE e.parent_id IS NOT NULL;
CREATE VIEW slide_info AS
  SELECT s.id AS slide_id, s.reference AS slide, sa.name AS sample,
         sa.sample_type AS sample_type, sa.patient_id AS patient_id,
         sp.name AS species, sp.species AS organism, sp.strain AS strain,
         s.creator AS creator, s.notes AS notes, s.created AS created,
         s.modified AS modified,
         (SELECT string_agg(l.structure || ':' || d.short_name, ';' ORDER BY l.id) FROM labelling l
            JOIN dye d ON d.id = l.dye_id WHERE l.slide_id = s.id) AS labellings,
         (SELECT string_agg(t.name, ',' ORDER BY t.name) FROM tagging g JOIN tag t ON t.id = g.tag_id
           WHERE g.entity = 'slide' AND g.record_id = s.id) AS tags
    FROM slide s JOIN sample sa ON sa.id = s.sample_id
    JOIN species sp ON sp.id = sa.species_id;
CREATE VIEW image_info AS
  SELECT i.id AS image_id, i.name AS image, i."user" AS "user", i.acquired AS acquired,
         i.comments AS comments, si.*,
         (SELECT string_agg(t.name, ',' ORDER BY t.name) FROM tagging g JOIN tag t ON t.id = g.tag_id
           WHERE g.entity = 'image' AND g.record_id = i.id) AS image_tags
    FROM image i JOIN slide_info si ON si.slide_id = i.slide_id;
CREATE VIEW file_info AS
  SELECT e.id AS file_id, ep.path AS path, e.size AS size, e.hash AS hash,
         e.mode AS mode, e.mtime_ns AS mtime_ns, e.kind AS kind,
         (SELECT string_agg(t.name, ',' ORDER BY t.name) FROM tagging g JOIN tag t ON t.id = g.tag_id
           WHERE g.entity = 'entry' AND g.record_id = e.id) AS file_tags,
         ii.*
    FROM entry e JOIN entry_path ep ON ep.id = e.id
    JOIN image_info ii ON ii.image_id = e.image_id
   WHERE e.type = 'file';
)SQL";

// The per-table triggers: cleanup of tags and annotations, and NOTIFY.
std::string TableTriggers() {
  std::string sql;
  for (const char* t : schema::kTaggedTables)
    sql += std::string("CREATE TRIGGER ") + t + "_cleanup AFTER DELETE ON " + t +
           " FOR EACH ROW EXECUTE FUNCTION samplefs_cleanup('" + t + "');\n";
  for (const char* t : kNotifiedTables)
    sql += std::string("CREATE TRIGGER ") + t + "_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON " +
           t + " FOR EACH STATEMENT EXECUTE FUNCTION samplefs_notify();\n";
  return sql;
}

// v1 had no file kinds: derive them from the name as the importer does.
const char* kKindsFromNames = R"SQL(
UPDATE entry SET kind = CASE
  WHEN lower(name) ~ '\.(h5r|csv|json)$' THEN 'analysis'
  WHEN lower(name) ~ '\.(h5|tif|tiff|nd2|czi|zarr)$' THEN 'raw'
  ELSE 'other' END WHERE type = 'file';
)SQL";

// v3 is the same text on both engines: schema_shared.cc.

// v4 (trash), v5 (live mounts), v6 (POSIX times), v7 (atime, owners):
// schema_shared.cc, turned into PostgreSQL's words; the trash notifies other
// mounts as every table does.
std::string V4Trash() {
  return schema::ForPostgres(schema::kV4Trash) +
         "CREATE TRIGGER trash_notify AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON trash FOR EACH STATEMENT "
         "EXECUTE FUNCTION samplefs_notify();\n";
}


}  // namespace

std::string PostgresSchemaV1Sql() {
  return V1Tables() + "INSERT INTO meta(key, value) VALUES ('schema_version', '1');\n";
}

std::string PostgresSchemaSql() {
  return V1Tables() + V2Additions() + kTriggers + TableTriggers() + schema::ViewsV3(kViews) + schema::kV3Additions + "DROP VIEW file_info;\n" + schema::FileInfoV4(kViews) + V4Trash() + schema::ForPostgres(schema::kV5MountSessions) + schema::ForPostgres(schema::kV6PosixTimes) +
         schema::ForPostgres(schema::kV7AtimeOwners) + "INSERT INTO meta(key, value) VALUES ('schema_version', '7');\n";
}

std::string PostgresMigrationSql(int from_version) {
  switch (from_version) {
    case 1:
      return V2Additions() + kKindsFromNames + kTriggers + TableTriggers() + kViews +
             "UPDATE meta SET value = '2' WHERE key = 'schema_version';\n";
    case 2:
      return "DROP VIEW file_info;\n" + schema::FileInfoV3(kViews) + schema::kV3Additions +
             "UPDATE meta SET value = '3' WHERE key = 'schema_version';\n";
    case 3:  // schema v4: trash
      return "DROP VIEW file_info;\n" + schema::FileInfoV4(kViews) + V4Trash() +
             "UPDATE meta SET value = '4' WHERE key = 'schema_version';\n";
    case 4:  // schema v5: live mounts
      return std::string(schema::ForPostgres(schema::kV5MountSessions)) + "UPDATE meta SET value = '5' WHERE key = 'schema_version';\n";
    case 5:  // schema v6: entry.ctime_ns, entry.subfolders (issue 18)
      return std::string(schema::ForPostgres(schema::kV6PosixTimes)) + "UPDATE meta SET value = '6' WHERE key = 'schema_version';\n";
    case 6:  // schema v7: entry.atime_ns, entry.uid, entry.gid (issue 18)
      return schema::ForPostgres(schema::kV7AtimeOwners) + "UPDATE meta SET value = '7' WHERE key = 'schema_version';\n";
    default:
      return "";
  }
}

}  // namespace samplefs
