// Extended attributes of records (SPEC section 4, "Extended attributes").
//
//   user.xdg.tags          comma-separated tags (freedesktop convention)
//   user.xdg.comment       notes / comments of the record
//   user.samplefs.<field>  each field (RecordFields); hash is read-only
//   user.<anything else>   a free annotation stored in the catalog
//
// Only user.* names reach these functions: security.*, system.* and
// trusted.* are answered by the FUSE layer without touching the catalog.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "fs/node.h"

namespace samplefs::fs {

inline constexpr size_t kMaxXattrValue = 64 * 1024;

// The record a node's xattrs belong to, if it stands for one.
std::optional<std::pair<Entity, int64_t>> XattrRecord(const NodeSpec& node);

// Names of the xattrs a node carries (empty values are omitted).
Result<std::vector<std::string>> ListXattrs(Catalog& catalog, const NodeSpec& node);

// The value of `name`; kNotFound (-> ENODATA) when the node has none.
Result<std::string> GetXattr(Catalog& catalog, const NodeSpec& node, const std::string& name);

// setxattr of a user.* name. `flags` are XATTR_CREATE / XATTR_REPLACE.
// kPermission for a read-only field (EPERM), kInvalidArgument for a value
// that is not UTF-8 or not valid for the field, kTooBig over 64 KiB,
// kAlreadyExists (XATTR_CREATE) / kNotFound (XATTR_REPLACE, -> ENODATA).
Status SetXattr(Catalog& catalog, const NodeSpec& node, const std::string& name,
                const std::string& value, int flags);
// removexattr: kNotFound (-> ENODATA) when absent; kPermission for fields
// that cannot be empty.
Status RemoveXattr(Catalog& catalog, const NodeSpec& node, const std::string& name);

// "a,b" <-> {"a","b"}: split on ',', trim spaces, drop empties and duplicates.
std::vector<std::string> SplitTags(const std::string& value);
std::string JoinTags(const std::vector<std::string>& tags);

}  // namespace samplefs::fs
