#include "catalog/schema_shared.h"

#include <regex>

namespace samplefs::schema {

const char* const kTaggedTables[6] = {"species", "sample", "dye", "slide", "image", "entry"};

const char* const kV3Additions = R"SQL(
CREATE INDEX species_lower_name ON species(lower(name));
CREATE INDEX sample_lower_name ON sample(lower(name));
CREATE INDEX dye_lower_short_name ON dye(lower(short_name));
CREATE INDEX tag_lower_name ON tag(lower(name));
CREATE INDEX labelling_lower_structure ON labelling(lower(structure));
CREATE VIEW labelling_info AS
  SELECT l.id AS labelling_id, s.id AS slide_id, s.reference AS slide, sa.name AS sample,
         sp.name AS species, l.structure AS structure, l.isotype AS isotype,
         l.antibody AS antibody, d.short_name AS dye, d.long_name AS dye_long_name
    FROM labelling l JOIN slide s ON s.id = l.slide_id
    JOIN sample sa ON sa.id = s.sample_id JOIN species sp ON sp.id = sa.species_id
    JOIN dye d ON d.id = l.dye_id;
)SQL";

// The DDL below is in SQLite's words; ForPostgres() turns it into
// PostgreSQL's. Each version is a block of its own, shared by the fresh
// schema and its migration step.

// v4: the desktop trash (docs/DECISIONS.md "Trash"): a trashed entry keeps its
// row (and so its object: gc keeps every hash an entry names) but leaves the
// namespace: it moves to its image's files/ root under the name
// '/' || trash.id, which no file tool can create (names never hold '/').
// file_info leaves out every path that starts with '/'; trash_info lists the
// trash.
const char* const kV4Trash = R"SQL(
CREATE TABLE trash (
  id                 INTEGER PRIMARY KEY,
  entry_id           INTEGER NOT NULL UNIQUE REFERENCES entry(id) ON DELETE CASCADE,
  uid                INTEGER NOT NULL,
  name               TEXT NOT NULL,
  original_parent_id INTEGER REFERENCES entry(id) ON DELETE SET NULL,
  original_name      TEXT NOT NULL,
  original_path      TEXT NOT NULL,
  deleted_at         TEXT NOT NULL,
  UNIQUE (uid, name)
);
CREATE INDEX trash_deleted ON trash(deleted_at);
CREATE VIEW trash_info AS
  SELECT t.id AS trash_id, t.uid AS uid, t.name AS trash_name, t.original_path AS original_path,
         t.deleted_at AS deleted_at, e.id AS entry_id, e.type AS type, e.size AS size,
         e.hash AS hash, e.image_id AS image_id
    FROM trash t JOIN entry e ON e.id = t.entry_id;
)SQL";

// v5: live mounts (catalog/mount_session.h). One table, no trigger (a
// heartbeat must not look like a change of the catalog to the other mounts).
const char* const kV5MountSessions = R"SQL(
CREATE TABLE mount_session (
  id         INTEGER PRIMARY KEY,
  host       TEXT NOT NULL,
  pid        INTEGER NOT NULL,
  mountpoint TEXT NOT NULL,
  started    INTEGER NOT NULL,
  heartbeat  INTEGER NOT NULL
);
)SQL";
// v6 (issue 18): entry.ctime_ns is the status-change time (an existing
// entry's is its mtime: the best guess there is); entry.subfolders counts
// a folder's child folders, kept by Catalog in the transaction of every
// mkdir/rmdir/move, so that a folder's nlink costs no COUNT.
const char* const kV6PosixTimes = R"SQL(
ALTER TABLE entry ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entry ADD COLUMN subfolders INTEGER NOT NULL DEFAULT 0 CHECK (subfolders >= 0);
UPDATE entry SET ctime_ns = mtime_ns;
UPDATE entry SET subfolders = (SELECT count(*) FROM entry c WHERE c.parent_id = entry.id AND c.type = 'folder')
 WHERE type = 'folder';
)SQL";

// v7 (issue 18, points 1 and 8): entry.atime_ns is
// the access time (an existing entry's is its mtime, the best guess there
// is); the mount writes reads' atimes in batches, relatime-style, never one
// write per read. entry.uid/gid are the creator's (the requesting user of a
// mount, or whoever changed them with chown); NULL, as for entries made by
// samplectl or before v7, shows as the mounting user (docs/DECISIONS.md
// "Owners").
const char* const kV7AtimeOwners = R"SQL(
ALTER TABLE entry ADD COLUMN atime_ns INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entry ADD COLUMN uid INTEGER CHECK (uid >= 0);
ALTER TABLE entry ADD COLUMN gid INTEGER CHECK (gid >= 0);
UPDATE entry SET atime_ns = mtime_ns;
)SQL";

namespace {

constexpr const char* kFileInfo = "CREATE VIEW file_info AS";

// `text` with its one `from` replaced by `to`.
std::string Replaced(const std::string& text, const std::string& from, const std::string& to) {
  size_t at = text.find(from);
  return text.substr(0, at) + to + text.substr(at + from.size());
}

}  // namespace

std::string FileInfoV3(const std::string& views) {
  return Replaced(views.substr(views.find(kFileInfo)), "         ii.*\n",
                  "         ii.*,\n"
                  "         'slides/' || ii.slide || '/images/' || ii.image || '/files/' || ep.path AS mount_path\n");
}

std::string ViewsV3(const std::string& views) {
  return views.substr(0, views.find(kFileInfo)) + FileInfoV3(views);
}

std::string FileInfoV4(const std::string& views) {
  return Replaced(FileInfoV3(views), "WHERE e.type = 'file';", "WHERE e.type = 'file' AND ep.path NOT LIKE '/%';");
}

std::string ForPostgres(const std::string& sql) {
  static const std::regex kKey("INTEGER PRIMARY KEY"), kInteger("\\bINTEGER\\b");
  return std::regex_replace(std::regex_replace(sql, kKey, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
                            kInteger, "BIGINT");
}

}  // namespace samplefs::schema
