// What a node of the mounted namespace stands for (SPEC section 4).
//
// A NodeSpec names a position in the namespace by record ids, not by path,
// so an operation on an inode stays correct when the same record is renamed
// through another path or another process.
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

#include "catalog/query.h"
#include "catalog/records.h"

namespace samplefs::fs {

// Nanoseconds since the epoch as a timespec, times before 1970 included:
// tv_nsec is always 0..999999999 (floor division), as the kernel wants.
inline struct timespec NsToTimespec(int64_t ns) {
  int64_t sec = ns / 1000000000, nsec = ns % 1000000000;
  if (nsec < 0) {
    nsec += 1000000000;
    --sec;
  }
  struct timespec ts {};
  ts.tv_sec = static_cast<time_t>(sec);
  ts.tv_nsec = static_cast<long>(nsec);
  return ts;
}
inline int64_t TimespecToNs(const struct timespec& ts) {
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

enum class NodeKind : uint8_t {
  kRoot,
  kSpeciesView,     // /species
  kSamplesView,     // /samples
  kSlidesView,      // /slides (all slides; canonical)
  kDyesView,        // /dyes
  kStructuresView,  // /structures
  kTagsView,        // /tags
  kQueryView,       // /query (lists nothing)
  kMetaDir,         // /.samplefs
  kSpecies,         // /species/<name>                 record_id = species id
  kSample,          // /samples/<name>                 record_id = sample id
  kDye,             // /dyes/<name>                    record_id = dye id
  kStructure,       // /structures/<name>              text = structure
  kTag,             // /tags/<name>                    record_id = tag id
  kQuery,           // /query/<expression>             text = expression
  kSlideList,       // .../slides under a view         text = filter expression
  kTagImages,       // /tags/<t>/images                record_id = tag id
  kTagFiles,        // /tags/<t>/files                 record_id = tag id
  kQueryImages,     // /query/<e>/images               text = expression
  kSlide,           // .../slides/<ref>                record_id = slide id
  kImages,          // .../<slide>/images              record_id = slide id
  kImage,           // .../images/<name>               record_id = image id
  kFolder,          // files/ and folders inside it    record_id = entry id
  kFile,            // a file inside files/            record_id = entry id
  kSymlink,         // a symlink inside files/         record_id = entry id
  kSidecar,         // species.json, slide.json, ...   entity + record_id
  kStatusFile,      // /.samplefs/status.json
  kErrorsFile,      // /.samplefs/errors
  kScratch,         // an editor's temporary file in a record directory:
                    // entity + record_id = the directory, text = name
  kTrashDir,        // /.Trash-<uid> (freedesktop trash)   record_id = uid
  kTrashFiles,      // /.Trash-<uid>/files                 record_id = uid
  kTrashInfoDir,    // /.Trash-<uid>/info                  record_id = uid
  kTrashInfo,       // /.Trash-<uid>/info/<n>.trashinfo    record_id = trash id
};

struct NodeSpec {
  NodeKind kind = NodeKind::kRoot;
  int64_t record_id = 0;
  Entity entity = Entity::kSlide;  // kSidecar only
  std::string text;                // structure name or query expression

  bool is_dir() const {
    return kind != NodeKind::kFile && kind != NodeKind::kSymlink && kind != NodeKind::kSidecar &&
           kind != NodeKind::kStatusFile && kind != NodeKind::kErrorsFile &&
           kind != NodeKind::kScratch && kind != NodeKind::kTrashInfo;
  }
  bool operator==(const NodeSpec& o) const {
    return kind == o.kind && record_id == o.record_id && entity == o.entity && text == o.text;
  }
};

// A spec of `kind` for record `id` (and `text`, for the kinds that carry one).
inline NodeSpec Spec(NodeKind kind, int64_t id = 0, std::string text = {}) {
  NodeSpec s;
  s.kind = kind;
  s.record_id = id;
  s.text = std::move(text);
  return s;
}

// "slide", "files/", ... for messages.
const char* NodeKindName(NodeKind kind);

// The directory of a record (species/<name>, slides/<reference>, ...) and
// the record's entity, both ways; other kinds and entities have none.
inline std::optional<Entity> RecordDirEntity(NodeKind kind) {
  switch (kind) {
    case NodeKind::kSpecies: return Entity::kSpecies;
    case NodeKind::kSample: return Entity::kSample;
    case NodeKind::kDye: return Entity::kDye;
    case NodeKind::kSlide: return Entity::kSlide;
    case NodeKind::kImage: return Entity::kImage;
    default: return std::nullopt;
  }
}
inline std::optional<NodeKind> RecordDirKind(Entity entity) {
  switch (entity) {
    case Entity::kSpecies: return NodeKind::kSpecies;
    case Entity::kSample: return NodeKind::kSample;
    case Entity::kDye: return NodeKind::kDye;
    case Entity::kSlide: return NodeKind::kSlide;
    case Entity::kImage: return NodeKind::kImage;
    default: return std::nullopt;
  }
}

}  // namespace samplefs::fs
