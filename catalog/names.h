// Validation of record keys and file names (SPEC section 7).
//
// A name is UTF-8, 1..255 bytes, contains no '/' and no NUL, and is not "."
// or "..". These rules are the same for every record key (species name,
// slide reference, ...) and every name inside files/, because each of them
// becomes a directory entry.
#pragma once

#include <string_view>

#include "catalog/status.h"

namespace samplefs {

inline constexpr size_t kMaxNameBytes = 255;

// True when `s` is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF).
bool IsValidUtf8(std::string_view s);

// OK, or kInvalidArgument (empty, '/', NUL, "."/"..", not UTF-8) or
// kNameTooLong (> 255 bytes). `what` names the thing in the message
// ("slide reference").
Status ValidateName(std::string_view name, std::string_view what = "name");

}  // namespace samplefs
