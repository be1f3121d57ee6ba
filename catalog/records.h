// The records of the catalog (SPEC section 2). Plain structs; ids are the
// integer primary keys, 0 meaning "not yet stored".
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

namespace samplefs {

struct Species {
  int64_t id = 0;
  std::string name;     // key, e.g. "HeLa"
  std::string species;  // Human, Rat, Mouse, ...
  std::string strain;
  std::string notes;
};

struct Sample {
  int64_t id = 0;
  std::string name;  // key
  int64_t species_id = 0;
  std::string patient_id;
  std::string sample_type;  // Cell Culture, Tissue Section, ...
  std::string notes;
};

struct Dye {
  int64_t id = 0;
  std::string short_name;  // key, e.g. "A647"
  std::string long_name;
  std::string spectra_db_name;
};

struct Slide {
  int64_t id = 0;
  std::string reference;  // key
  int64_t sample_id = 0;
  std::string creator;
  std::string notes;
  std::string created;   // ISO-8601 UTC; set by the catalog when empty
  std::string modified;  // ISO-8601 UTC; maintained by the catalog
};

struct Labelling {
  int64_t id = 0;
  int64_t slide_id = 0;
  std::string structure;
  std::string isotype;
  std::string antibody;
  int64_t dye_id = 0;
};

struct Image {
  int64_t id = 0;
  int64_t slide_id = 0;
  std::string name;  // key within the slide
  std::string user;
  std::string acquired;  // ISO-8601 UTC; set by the catalog when empty
  std::string comments;
};

enum class EntryType { kFile, kFolder, kSymlink };
const char* EntryTypeName(EntryType t);  // "file", "folder", "symlink"

// A file, folder or symlink inside an image's files/.
struct Entry {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t parent_id = 0;  // 0 only for the image's root folder (files/)
  std::string name;       // key within the parent folder
  EntryType type = EntryType::kFile;
  uint64_t size = 0;
  std::string hash;  // 32 hex digits for files, empty otherwise
  uint32_t mode = 0644;  // permission bits only
  int64_t mtime_ns = 0;
  std::string kind = "other";  // raw, analysis, other
  std::string target;          // symlink target
  // Kept by the catalog (schema v4), never written from these fields:
  // ctime_ns is set to now by every change of the entry (content, mode,
  // mtime, name or parent, tags and annotations) and, for a folder, of its
  // entries; subfolders counts a folder's child folders (nlink = 2 + it).
  int64_t ctime_ns = 0;
  int64_t subfolders = 0;
  // Schema v7. atime_ns: CreateEntry takes it (kTimeUnset: the mtime), then
  // only SetEntryAtime/SetAtimes change it (never UpdateEntry, whose caller
  // may hold an older read). uid/gid: the owner; -1 = not recorded (shown as
  // the mounting user); CreateEntry takes them, then only SetEntryOwner.
  static constexpr int64_t kTimeUnset = INT64_MIN;
  int64_t atime_ns = kTimeUnset;
  int64_t uid = -1;
  int64_t gid = -1;
};

// An entry in the desktop trash (docs/DECISIONS.md "Trash").
struct TrashItem {
  int64_t id = 0;
  int64_t entry_id = 0;
  int64_t uid = 0;
  std::string name;              // its name in .Trash-<uid>/files/
  int64_t original_parent_id = 0;  // 0 once that folder is gone
  std::string original_name;
  std::string original_path;     // relative to the mount's root, as trashed
  std::string deleted_at;        // YYYY-MM-DDThh:mm:ss
  EntryType type = EntryType::kFile;
  uint64_t size = 0;
};

struct Tag {
  int64_t id = 0;
  std::string name;
};

// Which table a tag or annotation is attached to.
enum class Entity { kSpecies, kSample, kDye, kSlide, kImage, kEntry };
const char* EntityName(Entity e);  // "species", "sample", ..., "entry"

using Annotations = std::vector<std::pair<std::string, std::string>>;

// The kind of a file from its name: raw (*.h5, *.tif, ...), analysis
// (*.h5r, *.csv, *.json) or other.
std::string KindFromName(const std::string& name);

// `t` as ISO-8601 UTC, second precision ("2026-12-04T15:24:51Z"): the form
// record timestamps are stored in.
std::string Iso8601(std::time_t t);
// The current time in that form.
std::string NowIso8601();
// `t` as ISO-8601 local time without a zone ("2026-12-04T16:24:51"), as the
// freedesktop.org trash writes deletion dates.
std::string LocalIso8601(std::time_t t);

}  // namespace samplefs
