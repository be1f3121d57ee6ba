// What the two engines' schemas (schema_sqlite.cc, schema_postgres.cc) share
// word for word: the DDL both dialects accept, and the edits that turn one
// version of the file_info view into the next. Internal to catalog/.
#pragma once

#include <string>

namespace samplefs::schema {

// v1: the tables; v2: annotations and entry.kind. In SQLite's words.
extern const char* const kV1Tables;
extern const char* const kV2Additions;

// The records that carry tags and annotations (Entity in records.h). Both
// have no foreign key (none can name "any record"), so each engine deletes
// a record's own with a cleanup trigger per table.
extern const char* const kTaggedTables[6];

// v3: indexes for names compared ignoring case (query terms,
// catalog/query.h) and the labelling_info view.
extern const char* const kV3Additions;

// `views` (an engine's v2 views, file_info last) with file_info in its v3
// form: mount_path, the path under the mountpoint a user can open, added
// after its columns (view columns are never renamed or removed).
std::string FileInfoV3(const std::string& views);
std::string ViewsV3(const std::string& views);

// file_info of v4: v3's, without trashed entries and what is below them.
std::string FileInfoV4(const std::string& views);

// v4: the desktop trash (table trash, view trash_info); v5: live mounts
// (mount_session); v6: entry.ctime_ns and entry.subfolders. In SQLite's
// words (INTEGER ids and columns).
extern const char* const kV4Trash;
extern const char* const kV5MountSessions;
extern const char* const kV6PosixTimes;
// v7: entry.atime_ns, entry.uid, entry.gid.
extern const char* const kV7AtimeOwners;

// `sql` in PostgreSQL's words: "INTEGER PRIMARY KEY" becomes an identity
// column (ids from a sequence, never reused), INTEGER becomes BIGINT; with
// `collate_c` (the tables of v1 and v2), TEXT compares bytewise as in
// SQLite (COLLATE "C") and the column user is quoted.
std::string ForPostgres(const std::string& sql, bool collate_c = false);

}  // namespace samplefs::schema
