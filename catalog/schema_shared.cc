#include "catalog/schema_shared.h"

#include <regex>

namespace samplefs::schema {

// Tables common to v1 and v2. Timestamps of records are ISO-8601 UTC text
// ("2026-11-22T17:37:40Z") so they sort and compare as text and read well
// in pandas; file mtimes are integer nanoseconds since the epoch, so
// `cp -a` keeps them exactly.
const char* const kV1Tables = R"SQL(
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE species (
  id      INTEGER PRIMARY KEY,
  name    TEXT NOT NULL UNIQUE,
  species TEXT NOT NULL DEFAULT '',
  strain  TEXT NOT NULL DEFAULT '',
  notes   TEXT NOT NULL DEFAULT ''
);
CREATE TABLE sample (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  species_id  INTEGER NOT NULL REFERENCES species(id) ON DELETE RESTRICT,
  patient_id  TEXT NOT NULL DEFAULT '',
  sample_type TEXT NOT NULL DEFAULT '',
  notes       TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sample_species ON sample(species_id, id);
CREATE TABLE dye (
  id              INTEGER PRIMARY KEY,
  short_name      TEXT NOT NULL UNIQUE,
  long_name       TEXT NOT NULL DEFAULT '',
  spectra_db_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE slide (
  id        INTEGER PRIMARY KEY,
  reference TEXT NOT NULL UNIQUE,
  sample_id INTEGER NOT NULL REFERENCES sample(id) ON DELETE RESTRICT,
  creator   TEXT NOT NULL DEFAULT '',
  notes     TEXT NOT NULL DEFAULT '',
  created   TEXT NOT NULL,
  modified  TEXT NOT NULL
);
CREATE INDEX slide_sample ON slide(sample_id, id);
CREATE INDEX slide_creator ON slide(creator, id);
CREATE INDEX slide_created ON slide(created);
CREATE TABLE labelling (
  id        INTEGER PRIMARY KEY,
  slide_id  INTEGER NOT NULL REFERENCES slide(id) ON DELETE CASCADE,
  structure TEXT NOT NULL,
  isotype   TEXT NOT NULL DEFAULT '',
  antibody  TEXT NOT NULL DEFAULT '',
  dye_id    INTEGER NOT NULL REFERENCES dye(id) ON DELETE RESTRICT
);
CREATE INDEX labelling_slide ON labelling(slide_id);
CREATE INDEX labelling_dye ON labelling(dye_id, slide_id);
CREATE INDEX labelling_structure ON labelling(structure, slide_id);
CREATE TABLE image (
  id       INTEGER PRIMARY KEY,
  slide_id INTEGER NOT NULL REFERENCES slide(id) ON DELETE RESTRICT,
  name     TEXT NOT NULL,
  user     TEXT NOT NULL DEFAULT '',
  acquired TEXT NOT NULL,
  comments TEXT NOT NULL DEFAULT '',
  UNIQUE (slide_id, name)
);
CREATE INDEX image_user ON image(user, slide_id);
-- Everything inside an image's files/: files, folders and symlinks. Each
-- image has exactly one root folder (parent_id NULL, name '') that stands
-- for files/ itself, so every other entry has a parent and (parent, name)
-- is unique. Entries are a tree, so renaming a folder is one UPDATE.
CREATE TABLE entry (
  id        INTEGER PRIMARY KEY,
  image_id  INTEGER NOT NULL REFERENCES image(id) ON DELETE CASCADE,
  parent_id INTEGER REFERENCES entry(id) ON DELETE CASCADE,
  name      TEXT NOT NULL,
  type      TEXT NOT NULL CHECK (type IN ('file', 'folder', 'symlink')),
  size      INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
  hash      TEXT CHECK (hash IS NULL OR length(hash) = 32),
  mode      INTEGER NOT NULL,
  mtime_ns  INTEGER NOT NULL,
  target    TEXT,
  CHECK ((type = 'file') = (hash IS NOT NULL)),
  CHECK ((type = 'symlink') = (target IS NOT NULL))
);
CREATE UNIQUE INDEX entry_name ON entry(parent_id, name);
CREATE UNIQUE INDEX entry_root ON entry(image_id) WHERE parent_id IS NULL;
CREATE INDEX entry_parent ON entry(parent_id, id);
CREATE INDEX entry_hash ON entry(hash) WHERE hash IS NOT NULL;
CREATE TABLE tag (
  id   INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE
);
-- Tags on any record: entity is 'species', 'sample', 'dye', 'slide',
-- 'image' or 'entry'. A tag in use cannot be deleted (RESTRICT).
CREATE TABLE tagging (
  tag_id    INTEGER NOT NULL REFERENCES tag(id) ON DELETE RESTRICT,
  entity    TEXT NOT NULL,
  record_id INTEGER NOT NULL,
  PRIMARY KEY (tag_id, entity, record_id)
);
CREATE INDEX tagging_record ON tagging(entity, record_id);
)SQL";

// Additions of v2, shared by the fresh schema and the 1 -> 2 migration.
const char* const kV2Additions = R"SQL(
CREATE TABLE annotation (
  entity    TEXT NOT NULL,
  record_id INTEGER NOT NULL,
  key       TEXT NOT NULL,
  value     TEXT NOT NULL,
  PRIMARY KEY (entity, record_id, key)
);
CREATE INDEX annotation_key ON annotation(key, value);
ALTER TABLE entry ADD COLUMN kind TEXT NOT NULL DEFAULT 'other' CHECK (kind IN ('raw', 'analysis', 'other'));
)SQL";

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

// The DDL here is in SQLite's words; ForPostgres() turns it into
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

std::string ForPostgres(const std::string& sql, bool collate_c) {
  static const std::regex kKey("INTEGER PRIMARY KEY"), kInteger("\\bINTEGER\\b"), kText("\\bTEXT\\b"),
      kUser("\\buser\\b");
  std::string out = std::regex_replace(std::regex_replace(sql, kKey, "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
                                       kInteger, "BIGINT");
  if (!collate_c) return out;
  // "user" is a reserved word in PostgreSQL (image.user).
  return std::regex_replace(std::regex_replace(out, kText, "TEXT COLLATE \"C\""), kUser, "\"user\"");
}

}  // namespace samplefs::schema
