// The catalog schema, versioned. kSchemaVersion is what this program writes;
// an older catalog is migrated one step at a time inside one transaction,
// a newer one is refused (Code::kTooNew).
//
// Version history:
//   1  species, sample, dye, slide, labelling, image, entry, tag, tagging
//   2  entry.kind (raw/analysis/other), annotation table, analysis views
//   3  view labelling_info, file_info.mount_path, lower(name) indexes
//   4  trash table, trash_info view; file_info leaves out trashed entries
//   5  mount_session (live mounts, for gc; catalog/mount_session.h)
//   6  entry.ctime_ns, entry.subfolders (POSIX times and folder link counts)
//   7  entry.atime_ns, entry.uid, entry.gid (access times, owners)
#pragma once

#include <string>

namespace samplefs {

inline constexpr int kSchemaVersion = 7;

// The DDL of the current schema for SQLite (tables, indexes, triggers, views).
std::string SqliteSchemaSql();
// DDL that brings an SQLite catalog from `from_version` to from_version+1.
std::string SqliteMigrationSql(int from_version);
// The schema of version 1, kept so tests can build an old catalog.
std::string SqliteSchemaV1Sql();
// TEMP triggers (this connection only, nothing stored) that keep the id of a
// deleted newest row in meta, so that no id is ever reused.
std::string SqliteSessionSql();

// The same for PostgreSQL (schema_postgres.cc): identity columns for ids,
// plpgsql triggers, and NOTIFY triggers for other mounts.
std::string PostgresSchemaSql();
std::string PostgresMigrationSql(int from_version);
std::string PostgresSchemaV1Sql();

}  // namespace samplefs
