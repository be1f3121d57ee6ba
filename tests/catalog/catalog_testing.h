// What the catalog tests share: temporary directories and whole-file reads.
#pragma once

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace samplefs::testing_util {

// $TMPDIR, or /tmp.
inline std::string TempBase() {
  const char* t = std::getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

// A new directory TempBase()/<prefix>.XXXXXX; empty (errno set) if it
// could not be made. The caller removes it.
inline std::string MakeTempDir(const std::string& prefix) {
  std::string tmpl = TempBase() + "/" + prefix + ".XXXXXX";
  return ::mkdtemp(tmpl.data()) != nullptr ? tmpl : std::string();
}

// A small file's whole contents (empty if it cannot be read).
inline std::string ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace samplefs::testing_util
