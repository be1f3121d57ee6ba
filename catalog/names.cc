#include "catalog/names.h"

#include <string>

namespace samplefs {

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) { ++p; continue; }
    int len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (end - p < len) return false;
    for (int i = 1; i < len; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
      return false;  // overlong
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += len;
  }
  return true;
}

Status ValidateName(std::string_view name, std::string_view what) {
  std::string w(what);
  if (name.empty()) return Status(Code::kInvalidArgument, w + " is empty");
  if (name.size() > kMaxNameBytes)
    return Status(Code::kNameTooLong,
                  w + " is " + std::to_string(name.size()) + " bytes, the limit is 255");
  if (name == "." || name == "..")
    return Status(Code::kInvalidArgument, w + " may not be '.' or '..'");
  if (name.find('/') != std::string_view::npos)
    return Status(Code::kInvalidArgument, w + " contains '/'");
  if (name.find('\0') != std::string_view::npos)
    return Status(Code::kInvalidArgument, w + " contains a NUL byte");
  if (!IsValidUtf8(name)) return Status(Code::kInvalidArgument, w + " is not valid UTF-8");
  return Status::Ok();
}

}  // namespace samplefs
