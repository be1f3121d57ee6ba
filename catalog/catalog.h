// Catalog: the records of a samplefs catalog (SPEC section 2).
//
// Every method is a complete unit of work: it runs in its own transaction
// (or a savepoint of the caller's Transaction) and either changes
// everything it says or nothing. Errors come back as Status codes:
//   kNotFound          the record named does not exist
//   kAlreadyExists     a unique key is taken (a second "HeLa")
//   kReferenceMissing  a referenced record does not exist (a sample's species)
//   kNotEmpty          a record to delete still has children
//   kInvalidArgument / kNameTooLong   a key fails ValidateName, a bad value
//   kBusy              another process held the catalog past the busy timeout
//   kReadOnly          the catalog was opened read-only
// Messages name the record ("sample 'P12' still has 3 slides").
//
// Listing methods page by id: they return records with id > after_id in id
// order, at most `limit` of them. Ids are never reused, so a cookie of the
// last id seen resumes a listing exactly even while records are deleted.
//
// Thread safety: all methods may be called from any thread; the catalog
// serializes writes on one connection with a recursive mutex (a Transaction
// holds it for its whole life). Reads (lookups, listings, tags and
// annotations: the methods a mount's lookup, getattr, readdir and getxattr
// call) go to the same connection, unless EnableReaders() gave the catalog
// reader connections: then a read from a thread that holds no Transaction
// runs on a reader of its own and never waits behind a commit. It sees
// every transaction committed before it started (SQLite WAL, PostgreSQL
// READ COMMITTED), not one still open; a thread inside a Transaction reads
// through the writer and sees its own uncommitted changes.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/database.h"
#include "catalog/query.h"
#include "catalog/records.h"
#include "catalog/status.h"

namespace samplefs {

class Catalog;

// The catalog's write lock: a recursive mutex that knows when a writer
// lets go. lock() is a writer's (a write statement or a Transaction);
// lock_for_read() a read on the writer connection (no reader to be had,
// the change-counter poll). When the outermost holder releases it and a
// writer held it, the write listener runs (Catalog::SetWriteListener),
// still under the lock, after the write committed or rolled back: a mount
// drops the kernel's cached listings of its generated directories there,
// before the request that wrote replies.
class WriterMutex {
 public:
  void lock() {
    mu_.lock();
    ++depth_;
    wrote_ = true;
  }
  void lock_for_read() {
    mu_.lock();
    ++depth_;
  }
  void unlock();
  void set_listener(std::function<void()> fn) {
    std::lock_guard lock(mu_);
    listener_ = std::move(fn);
  }

 private:
  std::recursive_mutex mu_;
  int depth_ = 0;       // GUARDED_BY(mu_)
  bool wrote_ = false;  // GUARDED_BY(mu_)
  std::function<void()> listener_;  // GUARDED_BY(mu_)
};

// RAII transaction: BEGIN (or a SAVEPOINT when nested) on construction,
// rolled back on destruction unless Commit() succeeded. Holds the catalog's
// lock, so other threads wait until it ends.
class Transaction {
 public:
  explicit Transaction(Catalog& catalog);
  // Waits at most `wait_ms` for another process's write lock (then the
  // status is kBusy), instead of the busy timeout.
  Transaction(Catalog& catalog, int wait_ms);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  // The status of BEGIN; a failed begin makes Commit() return it.
  const Status& status() const { return begin_status_; }
  Status Commit();

 private:
  Catalog& catalog_;
  std::unique_lock<WriterMutex> lock_;
  Status begin_status_;
  int depth_ = 0;
  bool done_ = false;
};

struct CatalogStats {
  int64_t species = 0, samples = 0, dyes = 0, slides = 0, labellings = 0, images = 0;
  // files, folders, symlinks and file_bytes count what is in files/; what
  // is in the trash (docs/DECISIONS.md "Trash") is counted apart.
  int64_t files = 0, folders = 0, symlinks = 0, tags = 0, annotations = 0;
  int64_t file_bytes = 0;      // sum of file sizes as recorded
  int64_t trash_items = 0;     // what .Trash-<uid>/files/ lists, all uids
  int64_t trashed_files = 0, trashed_folders = 0, trashed_symlinks = 0;
  int64_t trashed_bytes = 0;   // sum of the trashed files' sizes
  int64_t distinct_objects = 0;
  int64_t distinct_bytes = 0;  // bytes of distinct objects referenced
};

// What statfs reports (Catalog::Usage): two queries rather than Stats()'s
// fourteen.
struct CatalogUsage {
  int64_t object_bytes = 0;  // bytes of the distinct objects records reference
  int64_t records = 0;       // entries, images, slides, samples, species, dyes, tags
};

class Catalog {
 public:
  // Opens (creating if needed) an SQLite catalog, migrating an older schema
  // in one transaction. kTooNew for a catalog written by a newer samplefs.
  static Result<std::unique_ptr<Catalog>> OpenSqlite(const std::string& path,
                                                     const DatabaseOptions& options = {});
  // Opens the engine a catalog setting names (OpenDatabase: a
  // postgresql:// URL or an SQLite path), then as OpenSqlite.
  static Result<std::unique_ptr<Catalog>> OpenUrl(const std::string& catalog,
                                                  const DatabaseOptions& options = {});
  // Wraps an already-open database (another engine, tests).
  static Result<std::unique_ptr<Catalog>> Open(std::unique_ptr<Database> db);

  int schema_version();
  // The writer connection (tools that write SQL of their own; samplectl
  // dump's snapshot): reads through the Catalog's methods may run on
  // reader connections once EnableReaders() was called.
  Database& db() { return *db_; }

  // Lets reads run on up to `max_readers` connections of their own (opened
  // when first needed, kept for reuse), so they do not wait behind a
  // commit holding the writer (docs/DECISIONS.md "Catalog readers"). A
  // database that cannot open another connection to the same catalog (an
  // in-memory SQLite one) keeps every read on the writer. Call once,
  // before the catalog is shared between threads.
  void EnableReaders(int max_readers);
  // Reader connections opened so far (tests, status).
  int readers_open();

  // --- species ---------------------------------------------------------
  Result<Species> CreateSpecies(const Species& s);
  Result<Species> SpeciesByName(const std::string& name);
  Result<Species> SpeciesById(int64_t id);
  Status UpdateSpecies(const Species& s);  // by id; may rename
  Status DeleteSpecies(int64_t id);        // kNotEmpty while samples exist
  Result<std::vector<Species>> ListSpecies(int64_t after_id, int limit);

  // --- samples ---------------------------------------------------------
  Result<Sample> CreateSample(const Sample& s);
  Result<Sample> SampleByName(const std::string& name);
  Result<Sample> SampleById(int64_t id);
  Status UpdateSample(const Sample& s);
  Status DeleteSample(int64_t id);  // kNotEmpty while slides exist
  // species_id 0: all samples.
  Result<std::vector<Sample>> ListSamples(int64_t species_id, int64_t after_id, int limit);

  // --- dyes ------------------------------------------------------------
  Result<Dye> CreateDye(const Dye& d);
  Result<Dye> DyeByName(const std::string& short_name);
  Result<Dye> DyeById(int64_t id);
  Status UpdateDye(const Dye& d);
  Status DeleteDye(int64_t id);  // kNotEmpty while labellings use it
  Result<std::vector<Dye>> ListDyes(int64_t after_id, int limit);

  // --- slides ----------------------------------------------------------
  // created/modified default to now. Timestamps are "YYYY-MM-DDTHH:MM:SSZ"
  // (UTC) or a date "YYYY-MM-DD" (stored as its midnight); anything else is
  // kInvalidArgument, so that they compare correctly as text.
  Result<Slide> CreateSlide(const Slide& s);
  Result<Slide> SlideByReference(const std::string& reference);
  Result<Slide> SlideById(int64_t id);
  Status UpdateSlide(const Slide& s);  // sets modified to now; an empty created keeps it
  Status DeleteSlide(int64_t id);      // kNotEmpty while images exist
  // Slides matching every term of `query` (empty query: all slides).
  // kInvalidArgument for a term whose value is malformed.
  Result<std::vector<Slide>> ListSlides(const Query& query, int64_t after_id, int limit);
  // Whether slide `slide_id` matches `query` (one indexed statement).
  Result<bool> SlideMatches(const Query& query, int64_t slide_id);
  // kReferenceMissing (ENOENT) for a term whose key is neither a query key
  // (catalog/fields.h) nor an annotation key of any slide, with the known
  // keys in the message: a misspelt key must not silently match nothing.
  Status CheckQueryKeys(const Query& query);
  // The distinct labelled structures, sorted by name.
  Result<std::vector<std::string>> ListStructures();

  // --- labellings ------------------------------------------------------
  // Adding, deleting or replacing labellings sets the slide's modified.
  // kReferenceMissing names the slide or dye that does not exist.
  Result<Labelling> AddLabelling(const Labelling& l);
  Result<std::vector<Labelling>> LabellingsOfSlide(int64_t slide_id);
  Status DeleteLabelling(int64_t id);
  // Replaces all labellings of a slide (sidecar edits).
  Status ReplaceLabellings(int64_t slide_id, const std::vector<Labelling>& labellings);

  // --- images ----------------------------------------------------------
  // Also creates the image's root folder entry (its files/).
  Result<Image> CreateImage(const Image& i);
  Result<Image> ImageByName(int64_t slide_id, const std::string& name);
  Result<Image> ImageById(int64_t id);
  // May rename or move to another slide; an empty acquired keeps it.
  Status UpdateImage(const Image& i);
  Status DeleteImage(int64_t id);      // kNotEmpty while files/ has entries
  Result<std::vector<Image>> ListImages(int64_t slide_id, int64_t after_id, int limit);
  // Images of the slides matching `query`, paged by image id (one statement).
  Result<std::vector<Image>> ListImagesMatching(const Query& query, int64_t after_id, int limit);

  // --- entries (files, folders, symlinks inside files/) -----------------
  Result<Entry> FilesRoot(int64_t image_id);
  // parent_id must be a folder (the entry joins its image; e.image_id is
  // ignored): kReferenceMissing if it does not exist, kInvalidArgument if it
  // is not a folder; kAlreadyExists if the name is taken (MoveEntry with
  // replace overwrites).
  Result<Entry> CreateEntry(const Entry& e);
  Result<Entry> EntryById(int64_t id);
  Result<Entry> EntryByName(int64_t parent_id, const std::string& name);
  // Updates size/hash/mode/mtime_ns/kind/target of an entry (by id; name
  // and parent_id are ignored). kInvalidArgument if e.type is not its type.
  // Its ctime becomes `ctime_ns`, 0: now (a version recorded after it was
  // written keeps the ctime the mount showed while it was pending).
  Status UpdateEntry(const Entry& e, int64_t ctime_ns = 0);
  // A new version of file `id`: its hash, size and mtime, its mode if
  // `mode` >= 0, and ctime the later of its own and `ctime_ns`. One
  // statement, no read before it (the committer records every closed file
  // this way: on PostgreSQL a round trip per file less). Returns false,
  // writing nothing, if no file has that id (unlinked meanwhile).
  Result<bool> RecordFileVersion(int64_t id, const std::string& hash, uint64_t size, int64_t mtime_ns,
                                 int mode, int64_t ctime_ns);
  // utimensat's atime (schema v7): sets it, and ctime to now.
  Status SetEntryAtime(int64_t id, int64_t atime_ns);
  // Reads' atimes, written by the mount in batches (relatime): one
  // transaction, no ctime change; ids that are gone are skipped.
  // `wait_ms` as for Transaction: a background flush waits briefly for
  // another process's write lock and retries later, rather than holding
  // the catalog (and every operation behind it) for the busy timeout.
  Status SetAtimes(const std::vector<std::pair<int64_t, int64_t>>& id_atime, int wait_ms = -1);
  // chown/chgrp (schema v7): -1 leaves uid or gid as it is; ctime = now.
  Status SetEntryOwner(int64_t id, int64_t uid, int64_t gid);
  // kNotEmpty for a folder with children; kPermission for a root folder.
  Status DeleteEntry(int64_t id);
  // Moves/renames an entry, possibly into another image. If the target
  // name exists: with `replace` a file/symlink or an empty folder is
  // replaced (its record deleted) when the types are compatible (kNotEmpty
  // for a non-empty folder, kNotADirectory / kIsADirectory as rename(2)
  // for folder over file / file over folder);
  // without `replace` kAlreadyExists. Moving a folder into its own subtree
  // is kInvalidArgument; a missing new parent kReferenceMissing. A file's
  // kind becomes KindFromName(new_name), in the same transaction, unless
  // it was set to one its old name does not give (kept). Returns the id
  // of the replaced entry, or 0.
  Result<int64_t> MoveEntry(int64_t id, int64_t new_parent_id, const std::string& new_name,
                            bool replace);
  Result<std::vector<Entry>> ListEntries(int64_t parent_id, int64_t after_id, int limit);
  Result<int64_t> CountEntries(int64_t parent_id);
  // Files tagged with `tag_id` (for tags/<tag>/files/).
  Result<std::vector<Entry>> ListTaggedEntries(int64_t tag_id, int64_t after_id, int limit);

  // --- trash (docs/DECISIONS.md "Trash") ---------------------------------
  // Moves an entry (and a folder's subtree) into uid's trash under
  // `trash_name` (unique per uid: kAlreadyExists). It leaves its folder,
  // every listing and file_info; its row and object stay until the trash
  // is emptied. kPermission for an image's files/ itself.
  Result<TrashItem> TrashEntry(int64_t entry_id, int64_t uid, const std::string& trash_name,
                               const std::string& original_path, const std::string& deleted_at);
  // uid < 0: every uid's. Ordered by id.
  Result<std::vector<TrashItem>> ListTrash(int64_t uid);
  Result<TrashItem> TrashItemByName(int64_t uid, const std::string& trash_name);
  Result<TrashItem> TrashItemById(int64_t id);
  // The uids with something in their trash, ascending (the root's listing).
  Result<std::vector<int64_t>> TrashUids();
  // Puts a trashed entry back: into `parent_id` as `name`, or (parent_id 0)
  // where it was. kReferenceMissing if its folder is gone, kAlreadyExists if
  // the name is taken there. Returns the entry.
  Result<Entry> RestoreTrash(int64_t trash_id, int64_t parent_id, const std::string& name);
  // Deletes one trashed entry and its subtree for good (objects: gc).
  Status DeleteTrashItem(int64_t trash_id);
  // Deletes uid's (uid < 0: all) trashed entries deleted before
  // `before` (empty: all). Returns how many.
  Result<int64_t> EmptyTrash(int64_t uid, const std::string& before);

  // --- tags --------------------------------------------------------------
  // Tagging or annotating a record that does not exist is kReferenceMissing.
  Result<Tag> CreateTag(const std::string& name);
  Result<Tag> TagByName(const std::string& name);
  Result<Tag> TagById(int64_t id);
  Status DeleteTag(int64_t id);  // kNotEmpty while any record carries it
  Result<std::vector<Tag>> ListTags(int64_t after_id, int limit);
  // Tag names of a record, sorted.
  Result<std::vector<std::string>> TagsOf(Entity entity, int64_t record_id);
  // Replaces a record's tags, creating tags that do not exist yet.
  Status SetTags(Entity entity, int64_t record_id, const std::vector<std::string>& names);
  Status AddTag(Entity entity, int64_t record_id, const std::string& name);
  Status RemoveTag(Entity entity, int64_t record_id, const std::string& name);
  // Record ids of `entity` carrying tag `tag_id`, paged by id.
  Result<std::vector<int64_t>> TaggedRecords(Entity entity, int64_t tag_id, int64_t after_id,
                                             int limit);

  // --- annotations (free key -> value on any record) --------------------
  Result<Annotations> AnnotationsOf(Entity entity, int64_t record_id);
  // A record's tags and its annotation keys (both sorted), in one
  // statement: what listxattr needs, and the value of user.xdg.tags that
  // getfattr -d asks next (the mount keeps it a moment, fs/xattr.h).
  struct XattrKeys {
    bool tagged = false;
    std::vector<std::string> tags;
    std::vector<std::string> annotation_keys;
  };
  Result<XattrKeys> XattrKeysOf(Entity entity, int64_t record_id);
  Result<std::string> Annotation(Entity entity, int64_t record_id, const std::string& key);
  Status SetAnnotation(Entity entity, int64_t record_id, const std::string& key,
                       const std::string& value);
  Status RemoveAnnotation(Entity entity, int64_t record_id, const std::string& key);

  // --- whole catalog ------------------------------------------------------
  Result<CatalogStats> Stats();
  // A scan of the entry table's hash index: callers that ask often (statfs)
  // cache it.
  Result<CatalogUsage> Usage();
  // Every distinct object hash any record references (gc, fsck), in hash
  // order, read in pages: `fn` runs without the catalog lock and may call
  // the catalog; an error from it stops the walk and is returned.
  Status ForEachReferencedHash(const std::function<Status(const std::string&)>& fn);
  // Changes when another process commits to the catalog.
  Result<int64_t> ExternalChangeCounter();
  // Runs `fn` each time a write on this catalog's connection ends (any
  // write method or Transaction, committed or not), on the writing thread,
  // under the catalog lock: `fn` must not call the catalog. Null: none.
  void SetWriteListener(std::function<void()> fn) { mu_.set_listener(std::move(fn)); }
  // The same counter where the engine has it pushed (PostgreSQL's NOTIFY),
  // without a query or the catalog lock; nullopt otherwise (SQLite).
  std::optional<int64_t> PushedChangeCounter() const { return db_->PushedChangeCounter(); }

 private:
  friend class Transaction;
  class ReadLock;
  explicit Catalog(std::unique_ptr<Database> db) : db_(std::move(db)) {}
  // A reader connection from the pool (a new one while fewer than
  // max_readers are open), or null: then the caller reads on the writer.
  std::unique_ptr<Database> BorrowReader();
  void ReturnReader(std::unique_ptr<Database> reader);
  Status Migrate();
  Result<CatalogStats> CountEverything();  // Stats() without its snapshot; REQUIRES(mu_)
  Status CheckRecordExists(const char* table, int64_t id, const char* what);

  WriterMutex mu_;
  std::unique_ptr<Database> db_;  // GUARDED_BY(mu_)
  int txn_depth_ = 0;             // GUARDED_BY(mu_)
  // The thread inside a Transaction (its reads go to the writer).
  std::atomic<std::thread::id> txn_owner_{};

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<Database>> idle_readers_;  // GUARDED_BY(readers_mu_)
  int readers_open_ = 0;                                 // GUARDED_BY(readers_mu_)
  int max_readers_ = 0;                                  // GUARDED_BY(readers_mu_)
  bool readers_unavailable_ = false;                     // GUARDED_BY(readers_mu_)
};

}  // namespace samplefs
