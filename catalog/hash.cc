#include "catalog/hash.h"

#include <xxhash.h>

#include <cstring>

namespace samplefs {

std::string ContentHash::hex() const {
  static const char* kDigits = "0123456789abcdef";
  std::string out(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xF];
  }
  return out;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<ContentHash> ContentHash::FromHex(std::string_view hex) {
  if (hex.size() != 32) return std::nullopt;
  ContentHash h;
  for (size_t i = 0; i < 16; ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    h.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return h;
}

ContentHash ContentHash::Of(const void* data, size_t size) {
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, XXH3_128bits(data, size));
  ContentHash h;
  std::memcpy(h.bytes.data(), canon.digest, 16);
  return h;
}

bool IsHashHex(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace samplefs
