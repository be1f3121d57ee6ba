// ContentHash: an XXH3-128 digest, the name of an object in the store.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace samplefs {

struct ContentHash {
  // Big-endian canonical bytes (XXH128_canonical_t), so hex matches xxhsum -H2.
  std::array<uint8_t, 16> bytes{};

  // 32 lowercase hex digits.
  std::string hex() const;
  // Parses exactly 32 hex digits (either case); nullopt for anything else.
  // This is the only way a string becomes a ContentHash, so no path built
  // from a hash can contain '/', '..' or anything outside [0-9a-f].
  static std::optional<ContentHash> FromHex(std::string_view hex);
  // Hash of a whole buffer (tests and small data).
  static ContentHash Of(const void* data, size_t size);

  bool operator==(const ContentHash&) const = default;
};

// True when `s` is exactly 32 lowercase hex digits.
bool IsHashHex(std::string_view s);

}  // namespace samplefs
